"""BOTKIT_HANDOFF_URL and BOTKIT_HANDOFF_SECRET: both or neither, the URL http(s)."""

from __future__ import annotations

import pytest

from botkit.config import Settings
from botkit.exceptions import ConfigError


def test_both_are_read() -> None:
    settings = Settings.from_env(
        {"BOTKIT_HANDOFF_URL": "https://desk.example/hook", "BOTKIT_HANDOFF_SECRET": "s3cret"}
    )
    assert (settings.handoff_url, settings.handoff_secret) == (
        "https://desk.example/hook",
        "s3cret",
    )


def test_neither_is_no_desk() -> None:
    settings = Settings.from_env({})
    assert (settings.handoff_url, settings.handoff_secret) == (None, None)


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"BOTKIT_HANDOFF_URL": "https://desk.example/hook"}, "BOTKIT_HANDOFF_SECRET is not set"),
        ({"BOTKIT_HANDOFF_SECRET": "s"}, "BOTKIT_HANDOFF_URL is not"),
        (
            {"BOTKIT_HANDOFF_URL": "desk.example", "BOTKIT_HANDOFF_SECRET": "s"},
            "BOTKIT_HANDOFF_URL must be an http(s) URL, not 'desk.example'",
        ),
    ],
)
def test_a_precise_error(env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    assert says in str(caught.value)
