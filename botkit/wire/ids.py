"""Identifiers checked at the edge: the provider's ids are ASCII digits of a plausible length.

`str.isdigit()` also accepts other scripts' digits and superscripts (Arabic-Indic digits, "²³"),
which the provider never sends and refuses in a request: such a value accepted at the edge
would fail later, in a handler or a send, after the webhook or the trigger had been answered.
"""

from __future__ import annotations

import re

from botkit.exceptions import PayloadError

# Meta's phone number ids have 15 or 16 digits; fakes and tests use shorter ones
PHONE_NUMBER_ID_DIGITS = (6, 20)
# a WhatsApp user id is an E.164 number without '+': a country code and at most 15 digits
WA_ID_DIGITS = (7, 15)

_ASCII_DIGITS = re.compile(r"[0-9]+")


def is_ascii_digits(value: str, low: int, high: int) -> bool:
    """Whether `value` is `low` to `high` ASCII digits."""
    return low <= len(value) <= high and _ASCII_DIGITS.fullmatch(value) is not None


def check_digits(value: str, field: str, digits: tuple[int, int], what: str) -> str:
    """`value` if it is ASCII digits of a length in `digits`; else PayloadError naming `field`."""
    low, high = digits
    if is_ascii_digits(value, low, high):
        return value
    raise PayloadError(f"{what} must be {low} to {high} ASCII digits", path=field)


def check_phone_number_id(value: str, field: str) -> str:
    """A business phone number id (Meta's numeric id of the number a bot sends from)."""
    return check_digits(value, field, PHONE_NUMBER_ID_DIGITS, "a phone_number_id")


def check_wa_id(value: str, field: str) -> str:
    """A user's WhatsApp id: the digits of an international phone number."""
    return check_digits(value, field, WA_ID_DIGITS, "a WhatsApp id (the user's number)")


__all__ = [
    "PHONE_NUMBER_ID_DIGITS",
    "WA_ID_DIGITS",
    "check_digits",
    "check_phone_number_id",
    "check_wa_id",
    "is_ascii_digits",
]
