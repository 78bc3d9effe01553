"""Phone numbers to GoSendAPI's E.164 digits (the only phonenumbers importer)."""

from __future__ import annotations

import phonenumbers

from botkit.logsafe import masked_phone, shown

_ALLOWED = frozenset(" +()-.\uff0b")  # and any script's digits, which phonenumbers reads


class PhoneNumberError(ValueError):
    """A phone number that cannot be read as an international number."""


def to_wa_id(raw: str) -> str:
    """E.164 digits without '+' (``5491140123456``) from a number as people write it.

    Accepts ``+54 9 11 4012-3456``, ``(+54) 9 11 4012 3456`` or bare digits with the country
    code. Refuses what cannot be a phone number in any country.
    """
    text = raw.strip()
    if not text:
        raise PhoneNumberError("the phone number is empty")
    stray = sorted({char for char in text if not char.isdigit() and char not in _ALLOWED})
    if stray:  # phonenumbers would drop a letter typed for a digit and give someone else's number
        raise PhoneNumberError(
            f"{shown(raw)} has characters a phone number does not: {shown(''.join(stray))}"
        )
    candidate = text if text.startswith("+") else "+" + text.lstrip("(")
    try:
        number = phonenumbers.parse(candidate, None)
    except phonenumbers.NumberParseException as exc:
        raise PhoneNumberError(
            f"{shown(raw)} is not a phone number with a country code: {exc}"
        ) from exc
    if not phonenumbers.is_possible_number(number):
        raise PhoneNumberError(f"{shown(raw)} is not a possible phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")


def masked(wa_id: str) -> str:
    """A user's number as logs show it, masked (`54911****3456`: botkit.logsafe's rule; a
    log line takes `logsafe.Phone(wa_id)`, which BOTKIT_LOG_PHONE=full shows whole)."""
    return masked_phone(wa_id)
