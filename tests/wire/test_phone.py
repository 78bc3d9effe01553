"""botkit.wire.phone: numbers as people write them, to GoSendAPI's E.164 digits (no '+')."""

from __future__ import annotations

import pytest

from botkit.wire.phone import PhoneNumberError, to_wa_id

JUAN = "5491140123456"
FULL_WIDTH = "+5491140123456".translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+54 9 11 4012-3456", JUAN),
        ("(+54) 9 11 4012 3456", JUAN),
        ("+54 (9) 11 4012 3456", JUAN),
        ("+54.9.11.4012.3456", JUAN),
        ("+5491140123456", JUAN),
        ("5491140123456", JUAN),  # bare digits, with the country code
        ("  +54 9 11 4012-3456\n", JUAN),
        ("+1 (415) 555-2671", "14155552671"),
        ("1 415 555 2671", "14155552671"),
        ("+44 20 7946 0958", "442079460958"),
        ("+34 612 34 56 78", "34612345678"),
        ("+55 11 91234-5678", "5511912345678"),
        (FULL_WIDTH, JUAN),  # full-width digits, as some keyboards type them
    ],
)
def test_human_formats_are_normalised_to_e164_digits(raw: str, expected: str) -> None:
    assert to_wa_id(raw) == expected


def test_normalising_twice_changes_nothing() -> None:
    assert to_wa_id(to_wa_id("+54 9 11 4012-3456")) == JUAN


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "+",
        "--",
        "hello",
        "juan@example.com",
        "12",  # too short to be a number anywhere
        "+1 555",
        "+999 123456789",  # no such country code
        "549114012345678901234",  # too long
        "0054 9 11 4012 3456",  # an international dialling prefix is not a country code
        "tel:+54-9-11-4012-3456",
        "+54 9 11 4012-3456abc",
        "+54 9 11 4012-3456 / +54 9 11 5555-5555",  # two numbers
    ],
)
def test_garbage_is_refused_with_phone_number_error(raw: str) -> None:
    with pytest.raises(PhoneNumberError):
        to_wa_id(raw)


def test_the_error_names_the_input_and_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="'hello'"):
        to_wa_id("hello")
    with pytest.raises(PhoneNumberError, match="empty"):
        to_wa_id("")


def test_a_letter_typed_for_a_digit_is_refused() -> None:
    with pytest.raises(PhoneNumberError):
        to_wa_id("+54 9 11 4O12-3456")
