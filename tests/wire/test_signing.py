"""Tests for botkit.wire.signing: sign() as GoSendAPI signs, verify() as the webhook checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from botkit.wire.signing import SIGNATURE_HEADER, sign, verify

BODY = b'{"id":"evt_1","type":"whatsapp.message.received"}'
SECRET = "whsec_test_5f1d2c"
# HMAC-SHA256(SECRET, BODY), computed independently (openssl dgst -sha256 -hmac).
BODY_HEX = "cc2f80e1041df3a1d56a958fba6dcb0d12d71e81519a7dbbf121c805306bb6c6"


@pytest.fixture
def signed(fixtures_dir: Path) -> tuple[str, bytes, str, str]:
    """(secret, body, header name, header value) of fixtures/webhooks/signed_body.json."""
    spec = json.loads((fixtures_dir / "signed_body.json").read_text())
    body = (fixtures_dir / spec["body_file"]).read_bytes()
    return spec["secret"], body, spec["header"], spec["value"]


def test_the_header_name_is_the_providers(signed: tuple[str, bytes, str, str]) -> None:
    assert SIGNATURE_HEADER == signed[2] == "X-GoSendAPI-Signature"


def test_sign_matches_the_fixtures_expected_header(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    assert sign(secret, body) == value


def test_sign_is_the_lower_case_hex_hmac_sha256_with_its_scheme() -> None:
    assert sign(SECRET, BODY) == "sha256=" + BODY_HEX


def test_verify_accepts_the_fixtures_signature(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    assert verify([secret], body, value)


def test_verify_refuses_another_secret(signed: tuple[str, bytes, str, str]) -> None:
    _, body, _, value = signed
    assert not verify(["whsec_someone_else"], body, value)


def test_verify_refuses_a_changed_body(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    assert not verify([secret], body + b" ", value)
    assert not verify([secret], body.replace(b"confirm_yes", b"confirm_no_"), value)


def test_verify_accepts_any_of_several_secrets(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    assert verify(["whsec_new", secret], body, value)
    assert verify((secret, "whsec_new"), body, value)
    assert verify(iter(["whsec_a", "whsec_b", secret]), body, value)
    assert not verify(["whsec_a", "whsec_b"], body, value)


def test_verify_with_no_secrets_refuses_everything(signed: tuple[str, bytes, str, str]) -> None:
    _, body, _, value = signed
    assert not verify([], body, value)


def test_verify_accepts_upper_case_hex(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    digest = value.removeprefix("sha256=")
    assert verify([secret], body, "sha256=" + digest.upper())
    assert verify([secret], body, "sha256=" + digest[:32].upper() + digest[32:])


@pytest.mark.parametrize("header", [None, ""])
def test_verify_refuses_a_missing_header(
    signed: tuple[str, bytes, str, str], header: str | None
) -> None:
    secret, body, _, _ = signed
    assert not verify([secret], body, header)


def test_verify_refuses_another_scheme(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    digest = value.removeprefix("sha256=")
    assert not verify([secret], body, "sha1=" + digest)
    assert not verify([secret], body, "sha512=" + digest)
    assert not verify([secret], body, digest)  # the bare hex, no scheme


@pytest.mark.parametrize(
    "header",
    [
        "sha256=",
        "sha256=zz" + "0" * 62,
        "sha256=not hex at all",
        "sha256=abc",  # odd length
        "=",
        "sha256",
    ],
)
def test_verify_refuses_a_digest_that_is_not_hex(
    signed: tuple[str, bytes, str, str], header: str
) -> None:
    secret, body, _, _ = signed
    assert not verify([secret], body, header)


def test_verify_refuses_a_truncated_digest(signed: tuple[str, bytes, str, str]) -> None:
    secret, body, _, value = signed
    assert not verify([secret], body, value[:-2])
    assert not verify([secret], body, value + "00")


def test_verify_of_an_empty_body(signed: tuple[str, bytes, str, str]) -> None:
    secret = signed[0]
    assert verify([secret], b"", sign(secret, b""))
    assert not verify([secret], b"", sign(secret, b"{}"))


def test_sign_and_verify_round_trip_on_non_ascii_secrets_and_bodies() -> None:
    secret = "whsec_contraseña"
    body = "¡Hola! ¿Confirmás el turno? 👍".encode()
    assert verify([secret], body, sign(secret, body))
    assert not verify(["whsec_contrasena"], body, sign(secret, body))
