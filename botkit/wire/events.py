"""Inbound events parsed from GoSendAPI envelopes and Meta-native webhook bodies (pure).

`parse_body` reads a webhook body of either shape into a list of events; `parse_envelope`
reads one modelled envelope (the form every event is stored in) back into its event. Errors
are `PayloadError`s whose `path` names the offending field, e.g. ``data.message.text.body``
or ``entry[0].changes[0].value.messages[1].from``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeAlias

from botkit import codec
from botkit.exceptions import PayloadError
from botkit.types import JSON, JSONObject
from botkit.wire.ids import check_phone_number_id, check_wa_id

__all__ = [
    "MEDIA_KINDS",
    "MESSAGE_DELIVERED",
    "MESSAGE_FAILED",
    "MESSAGE_READ",
    "MESSAGE_RECEIVED",
    "MESSAGE_SENT",
    "META_OBJECT",
    "STATUS_EVENTS",
    "UNKNOWN_TYPE",
    "ButtonTap",
    "Contact",
    "ContactsInput",
    "Event",
    "InboundMessage",
    "Input",
    "LocationInput",
    "MediaInput",
    "OtherEvent",
    "QuickReplyTap",
    "RowPick",
    "StatusError",
    "StatusUpdate",
    "TextInput",
    "UnsupportedInput",
    "parse_body",
    "parse_envelope",
]

# Model choices (gosendapi.md, "Receiving: webhooks"): the provider does not print its
# envelope, so every assumption about it lives here, to change when it publishes more.
MESSAGE_RECEIVED = "whatsapp.message.received"
"""An inbound message from a user (documented)."""
MESSAGE_SENT = "whatsapp.message.sent"
"""An outbound message was sent (modelled)."""
MESSAGE_DELIVERED = "whatsapp.message.delivered"
"""An outbound message reached the user's phone (documented)."""
MESSAGE_READ = "whatsapp.message.read"
"""An outbound message was read (modelled)."""
MESSAGE_FAILED = "whatsapp.message.failed"
"""An outbound message could not be delivered (modelled)."""
STATUS_EVENTS = frozenset({MESSAGE_SENT, MESSAGE_DELIVERED, MESSAGE_READ, MESSAGE_FAILED})
"""The envelope types that carry a `data.status`."""
META_OBJECT = "whatsapp_business_account"
"""The `object` of a Meta-native webhook body."""
MEDIA_KINDS = ("image", "video", "audio", "document", "sticker")
"""The message types read as `MediaInput`."""
UNKNOWN_TYPE = "unknown"
"""The `UnsupportedInput.type` of a message whose `type` is missing or not a string."""

_STATUS_PREFIX = "whatsapp.message."
_META_ID_PREFIX = "meta:"
_LIMITS = {"latitude": 90.0, "longitude": 180.0}


def _message_key(message_id: str) -> str:
    """The dedupe key of an envelope without an `id`: its message's wamid."""
    return f"wamid:{message_id}"


def _status_key(status_id: str, status: str) -> str:
    """The dedupe key of a status without an envelope `id`: one per message and status."""
    return f"status:{status_id}:{status}"


# --- the events --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TextInput:
    """The user typed text. In a conversation with `coalesce`, `body` is a burst's texts
    joined by newlines, and `parts` the texts as they came (empty: one message)."""

    body: str
    parts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ButtonTap:
    """The user tapped a reply button (`interactive.button_reply`)."""

    id: str
    title: str


@dataclass(frozen=True, slots=True)
class RowPick:
    """The user picked a list row (`interactive.list_reply`)."""

    id: str
    title: str
    description: str | None


@dataclass(frozen=True, slots=True)
class QuickReplyTap:
    """The user tapped a template's quick-reply button (message type `button`)."""

    payload: str
    text: str


@dataclass(frozen=True, slots=True)
class MediaInput:
    """The user sent an image, video, audio, document or sticker (fetch it by `id`)."""

    kind: str
    id: str
    mime_type: str | None
    sha256: str | None
    caption: str | None
    filename: str | None


@dataclass(frozen=True, slots=True)
class LocationInput:
    """The user shared a location."""

    latitude: float
    longitude: float
    name: str | None
    address: str | None


@dataclass(frozen=True, slots=True)
class ContactsInput:
    """The user shared contact cards, kept in Meta's shape."""

    contacts: tuple[JSONObject, ...]


@dataclass(frozen=True, slots=True)
class StatusError:
    """One of Meta's errors: on a failed status (e.g. code 131047: the window is closed), or
    on a message Meta could not read (e.g. code 131051: message type unknown)."""

    code: int | None
    title: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class UnsupportedInput:
    """A message botkit cannot read; `raw` is the whole message item, `reason` says why.

    `type` is the message type (``reaction``, ``order``, Meta's ``unsupported``...),
    ``interactive.<subtype>`` for an interactive reply other than a button or a list row, or
    `UNKNOWN_TYPE` when the message names no type. A message of a known type whose content
    is missing or malformed (an ``interactive`` without its ``interactive`` object, which Meta
    sends when something went wrong on its side) is unsupported too: refusing the body would
    make the provider retry it for days, and the user would get no answer. `errors` are the
    errors Meta attached to the message, those that could be read (all of them are in `raw`).
    """

    type: str
    raw: JSONObject
    reason: str = ""
    errors: tuple[StatusError, ...] = ()


Input: TypeAlias = (
    TextInput
    | ButtonTap
    | RowPick
    | QuickReplyTap
    | MediaInput
    | LocationInput
    | ContactsInput
    | UnsupportedInput
)
"""What a user sent: the input of an inbound message."""


@dataclass(frozen=True, slots=True)
class Contact:
    """The user who wrote; `user_id` is Meta's business-scoped id, kept when present."""

    wa_id: str
    name: str | None
    user_id: str | None


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A `whatsapp.message.received` event: one message from a user."""

    event_id: str
    phone_number_id: str
    contact: Contact
    message_id: str
    timestamp: int
    context_id: str | None
    input: Input
    envelope: JSONObject

    @property
    def wa_id(self) -> str:
        """The user's WhatsApp id (phone digits)."""
        return self.contact.wa_id


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    """A status event (sent, delivered, read, failed) about an outbound message."""

    event_id: str
    phone_number_id: str
    message_id: str
    status: str
    timestamp: int
    recipient_id: str
    errors: tuple[StatusError, ...]
    envelope: JSONObject

    @property
    def wa_id(self) -> str:
        """The user the outbound message was sent to."""
        return self.recipient_id


@dataclass(frozen=True, slots=True)
class OtherEvent:
    """A well-formed envelope of a type botkit does not handle: stored and ignored."""

    event_id: str
    type: str
    phone_number_id: str | None
    envelope: JSONObject


Event: TypeAlias = InboundMessage | StatusUpdate | OtherEvent
"""Anything a webhook body can carry."""


# --- reading JSON with paths -------------------------------------------------------------


def _at(path: str, key: str | int) -> str:
    """The path of `key` (a field name or a list index) under `path`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _describe(value: JSON) -> str:
    """A JSON value's type, with the value itself when it is short, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        quoted = codec.dumps_str(value[:41])  # never the whole of a megabyte from a request
        return f"string {quoted[:40]}{'...' if len(quoted) > 40 else ''}"
    return f"number {value}"


def _wrong(expected: str, value: JSON, path: str) -> PayloadError:
    """The error for a value of the wrong type or form."""
    return PayloadError(f"expected {expected}, got {_describe(value)}", path=path)


def _required(parent: JSONObject, key: str, path: str) -> JSON:
    """The value of `key`; an error naming it when it is absent."""
    if key not in parent:
        raise PayloadError("required field is missing", path=_at(path, key))
    return parent[key]


def _as_object(value: JSON, path: str) -> JSONObject:
    """`value` when it is an object."""
    if not isinstance(value, dict):
        raise _wrong("an object", value, path)
    return value


def _object(parent: JSONObject, key: str, path: str) -> JSONObject:
    """The required object under `key`."""
    return _as_object(_required(parent, key, path), _at(path, key))


def _opt_object(parent: JSONObject, key: str, path: str) -> JSONObject | None:
    """The object under `key`, or None when it is absent or null."""
    value = parent.get(key)
    return None if value is None else _as_object(value, _at(path, key))


def _array(parent: JSONObject, key: str, path: str) -> list[JSON]:
    """The required array under `key`."""
    value = _required(parent, key, path)
    if not isinstance(value, list):
        raise _wrong("an array", value, _at(path, key))
    return value


def _opt_array(parent: JSONObject, key: str, path: str) -> list[JSON]:
    """The array under `key`, or an empty one when it is absent or null."""
    return [] if parent.get(key) is None else _array(parent, key, path)


def _string(parent: JSONObject, key: str, path: str) -> str:
    """The required string under `key` (may be empty: a text body, a title)."""
    value = _required(parent, key, path)
    if not isinstance(value, str):
        raise _wrong("a string", value, _at(path, key))
    return value


def _ident(parent: JSONObject, key: str, path: str) -> str:
    """The required non-empty string under `key`: an id, a type name."""
    value = _string(parent, key, path)
    if not value.strip():
        raise _wrong("a non-empty string", value, _at(path, key))
    if len(value) > MAX_IDENT:  # it becomes a key of the store and a part of log lines
        raise _wrong(f"at most {MAX_IDENT} characters", value, _at(path, key))
    return value


def _opt_string(parent: JSONObject, key: str, path: str) -> str | None:
    """The string under `key`, or None when it is absent or null."""
    return None if parent.get(key) is None else _string(parent, key, path)


def _opt_ident(parent: JSONObject, key: str, path: str) -> str | None:
    """The non-empty string under `key`, or None when it is absent or null."""
    return None if parent.get(key) is None else _ident(parent, key, path)


def _opt_numeric_id(parent: JSONObject, key: str, path: str) -> str | None:
    """A numeric id (phone_number_id) given as a string or, the obvious alternative, a number."""
    value = parent.get(key)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return _opt_ident(parent, key, path)


MAX_TIMESTAMP = 10**11  # year 5138: anything later is not a message's send time
MAX_IDENT = 512  # characters of an id or a type name: Meta's wamids have about 60
MAX_ERROR_CODE = 2**31 - 1  # Meta's error codes are 32-bit (131047, 130429...)


def _integer(value: JSON) -> int | None:
    """`value` as an integer when it is one or a string of digits, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    text = value.strip() if isinstance(value, str) else ""
    # 20 digits is far past any Unix time; longer strings are refused before int() parses them
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 20 else None


def _timestamp(parent: JSONObject, key: str, path: str) -> int:
    """Unix seconds, which Meta sends as a string of digits and others as a number."""
    value = _required(parent, key, path)
    seconds = _integer(value)
    if seconds is None or not 0 <= seconds <= MAX_TIMESTAMP:
        raise _wrong("Unix seconds (an integer or a string of digits)", value, _at(path, key))
    return seconds


def _coordinate(parent: JSONObject, key: str, path: str) -> float:
    """A latitude or longitude: a number (or a numeric string) within its range."""
    value = _required(parent, key, path)
    number = _float(value)
    limit = _LIMITS[key]
    if number is None or not -limit <= number <= limit:
        raise _wrong(f"a number from {-limit:g} to {limit:g}", value, _at(path, key))
    return number


def _float(value: JSON) -> float | None:
    """`value` as a finite float when it is a number or a numeric string, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


# --- what the user sent ------------------------------------------------------------------

_InputParser: TypeAlias = Callable[[JSONObject, str], Input]


def _text(message: JSONObject, path: str) -> TextInput:
    """`text.body`."""
    text = _object(message, "text", path)
    return TextInput(body=_string(text, "body", _at(path, "text")))


def _button_reply(reply: JSONObject, path: str) -> ButtonTap:
    """`interactive.button_reply`: the id is required, a missing title reads as empty."""
    title = _opt_string(reply, "title", path)
    return ButtonTap(id=_ident(reply, "id", path), title=title or "")


def _list_reply(reply: JSONObject, path: str) -> RowPick:
    """`interactive.list_reply`: the id is required, the description is optional."""
    title = _opt_string(reply, "title", path) or ""
    description = _opt_string(reply, "description", path)
    return RowPick(id=_ident(reply, "id", path), title=title, description=description)


_REPLY_PARSERS: dict[str, _InputParser] = {
    "button_reply": _button_reply,
    "list_reply": _list_reply,
}


def _interactive(message: JSONObject, path: str) -> Input:
    """An interactive reply: a button or a list row; other subtypes are unsupported."""
    interactive = _object(message, "interactive", path)
    where = _at(path, "interactive")
    subtype = _interactive_type(interactive, where)
    parser = _REPLY_PARSERS.get(subtype)
    if parser is None:
        reason = f"botkit does not read interactive replies of type {subtype!r}"
        return _unsupported(f"interactive.{subtype}", message, path, reason)
    return parser(_object(interactive, subtype, where), _at(where, subtype))


def _interactive_type(interactive: JSONObject, path: str) -> str:
    """`interactive.type`, or, when it is absent, the one reply object present."""
    if "type" in interactive:
        return _ident(interactive, "type", path)
    present = [name for name in _REPLY_PARSERS if name in interactive]
    if len(present) != 1:
        raise PayloadError("required field is missing", path=_at(path, "type"))
    return present[0]


def _quick_reply(message: JSONObject, path: str) -> QuickReplyTap:
    """Type `button`: a template quick-reply tap; `button.payload` is required."""
    button = _object(message, "button", path)
    where = _at(path, "button")
    text = _opt_string(button, "text", where) or ""
    return QuickReplyTap(payload=_ident(button, "payload", where), text=text)


def _media(message: JSONObject, path: str) -> MediaInput:
    """An image, video, audio, document or sticker: the media object named by the type."""
    kind = _ident(message, "type", path)
    media = _object(message, kind, path)
    where = _at(path, kind)
    return MediaInput(
        kind=kind,
        id=_ident(media, "id", where),
        mime_type=_opt_string(media, "mime_type", where),
        sha256=_opt_string(media, "sha256", where),
        caption=_opt_string(media, "caption", where),
        filename=_opt_string(media, "filename", where),
    )


def _location(message: JSONObject, path: str) -> LocationInput:
    """`location`: coordinates required, name and address optional."""
    location = _object(message, "location", path)
    where = _at(path, "location")
    return LocationInput(
        latitude=_coordinate(location, "latitude", where),
        longitude=_coordinate(location, "longitude", where),
        name=_opt_string(location, "name", where),
        address=_opt_string(location, "address", where),
    )


def _contacts(message: JSONObject, path: str) -> ContactsInput:
    """`contacts`: Meta's contact cards, each an object, kept as given."""
    cards = _array(message, "contacts", path)
    where = _at(path, "contacts")
    return ContactsInput(
        contacts=tuple(_as_object(card, _at(where, i)) for i, card in enumerate(cards))
    )


_INPUT_PARSERS: dict[str, _InputParser] = {
    "text": _text,
    "interactive": _interactive,
    "button": _quick_reply,
    "location": _location,
    "contacts": _contacts,
    **{kind: _media for kind in MEDIA_KINDS},
}


def _input(message: JSONObject, path: str) -> Input:
    """The message's input. A type botkit does not know, or a known type whose content is
    missing or malformed, is unsupported: never an error, so one odd message cannot make
    the provider retry a whole body (and every other message in it)."""
    kind = message.get("type")
    if not isinstance(kind, str) or not kind.strip():
        reason = f"{_at(path, 'type')}: expected the message type, got {_describe(kind)}"
        return _unsupported(UNKNOWN_TYPE, message, path, reason)
    parser = _INPUT_PARSERS.get(kind)
    if parser is None:
        return _unsupported(kind, message, path, f"botkit does not read messages of type {kind!r}")
    try:
        return parser(message, path)
    except PayloadError as exc:
        return _unsupported(kind, message, path, str(exc))


def _unsupported(kind: str, message: JSONObject, path: str, reason: str) -> UnsupportedInput:
    """An unsupported input, with the errors Meta attached to the message."""
    return UnsupportedInput(
        type=kind, raw=message, reason=reason, errors=_message_errors(message, path)
    )


def _message_errors(message: JSONObject, path: str) -> tuple[StatusError, ...]:
    """The readable items of a message's `errors` (the others stay in the raw message)."""
    given = message.get("errors")
    if not isinstance(given, list):
        return ()
    where = _at(path, "errors")
    found: list[StatusError] = []
    for i, raw in enumerate(given):
        try:
            found.append(_status_error(raw, _at(where, i)))
        except PayloadError:
            continue
    return tuple(found)


# --- envelopes ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Where:
    """Where a message and its contact sit in the body, for error paths."""

    message: str = "data.message"
    contact: str = "data.contact"


def _envelope_id(envelope: JSONObject) -> str | None:
    """The envelope's `id` (the dedupe key), None when absent."""
    return _opt_ident(envelope, "id", "")


def _phone_number_id(envelope: JSONObject, data: JSONObject) -> str | None:
    """The business number: at the top level, else in `data`, else in `data.metadata`."""
    metadata = _opt_object(data, "metadata", "data") or {}
    for parent, path in ((envelope, ""), (data, "data"), (metadata, "data.metadata")):
        found = _opt_numeric_id(parent, "phone_number_id", path)
        if found is not None:
            return check_phone_number_id(found, _at(path, "phone_number_id"))
    return None


def _require_phone_number_id(envelope: JSONObject, data: JSONObject) -> str:
    """The business number, which every message and status needs (replies go out from it)."""
    found = _phone_number_id(envelope, data)
    if found is None:
        raise PayloadError(
            "required field is missing (also looked for data.phone_number_id and "
            "data.metadata.phone_number_id)",
            path="phone_number_id",
        )
    return found


def _contact(raw: JSONObject, path: str, sender: str) -> Contact:
    """A contact object (`wa_id`, `profile.name`, `user_id`); `wa_id` defaults to the sender."""
    profile = _opt_object(raw, "profile", path)
    name = None if profile is None else _opt_string(profile, "name", _at(path, "profile"))
    wa_id = _opt_ident(raw, "wa_id", path)
    return Contact(
        wa_id=sender if wa_id is None else check_wa_id(wa_id, _at(path, "wa_id")),
        name=name,
        user_id=_opt_string(raw, "user_id", path),
    )


def _received(envelope: JSONObject, data: JSONObject, where: _Where) -> InboundMessage:
    """A message.received envelope; the contact defaults to the sender, with no name."""
    message = _object(data, "message", "data")
    sender = _sender(message, where.message)
    message_id = _ident(message, "id", where.message)
    raw_contact = _opt_object(data, "contact", "data")
    contact = Contact(sender, None, None)
    if raw_contact is not None:
        contact = _contact(raw_contact, where.contact, sender)
    return InboundMessage(
        event_id=_envelope_id(envelope) or _message_key(message_id),
        phone_number_id=_require_phone_number_id(envelope, data),
        contact=contact,
        message_id=message_id,
        timestamp=_timestamp(message, "timestamp", where.message),
        context_id=_context_id(message, where.message),
        input=_input(message, where.message),
        envelope=envelope,
    )


def _sender(message: JSONObject, path: str) -> str:
    """`from`: the user who wrote, whose lane the message goes to and whom replies go to."""
    return check_wa_id(_ident(message, "from", path), _at(path, "from"))


def _context_id(message: JSONObject, path: str) -> str | None:
    """`context.id`: the business message a reply answers."""
    context = _opt_object(message, "context", path)
    return None if context is None else _opt_ident(context, "id", _at(path, "context"))


def _is_status(kind: str, data: JSONObject) -> bool:
    """Whether an envelope type names a status: a known one, or `whatsapp.message.*` with one."""
    if kind in STATUS_EVENTS:
        return True
    return kind.startswith(_STATUS_PREFIX) and kind != MESSAGE_RECEIVED and "status" in data


def _status_name(item: JSONObject, path: str, kind: str) -> str:
    """The status, lower-cased: `status.status` when given, else the envelope type's suffix."""
    given = _opt_ident(item, "status", path)
    return (given or kind.removeprefix(_STATUS_PREFIX)).strip().lower()


def _status_error(raw: JSON, path: str) -> StatusError:
    """One `errors[]` item; the message falls back to `error_data.details`."""
    error = _as_object(raw, path)
    details = _opt_object(error, "error_data", path) or {}
    message = _opt_string(error, "message", path)
    return StatusError(
        code=_opt_code(error, path),
        title=_opt_string(error, "title", path),
        message=message or _opt_string(details, "details", _at(path, "error_data")),
    )


def _opt_code(error: JSONObject, path: str) -> int | None:
    """An error's numeric `code` (a number or a string of digits), None when absent."""
    given = error.get("code")
    code = None if given is None else _integer(given)
    if given is not None and (code is None or not 0 <= code <= MAX_ERROR_CODE):
        raise _wrong(f"an integer from 0 to {MAX_ERROR_CODE}", given, _at(path, "code"))
    return code


def _status(envelope: JSONObject, data: JSONObject, kind: str, path: str) -> StatusUpdate:
    """A status envelope: Meta's `statuses[]` item under `data.status`."""
    item = _object(data, "status", "data")
    status_id = _ident(item, "id", path)
    status = _status_name(item, path, kind)
    errors = _opt_array(item, "errors", path)
    return StatusUpdate(
        event_id=_envelope_id(envelope) or _status_key(status_id, status),
        phone_number_id=_require_phone_number_id(envelope, data),
        message_id=status_id,
        status=status,
        timestamp=_timestamp(item, "timestamp", path),
        recipient_id=check_wa_id(_ident(item, "recipient_id", path), _at(path, "recipient_id")),
        errors=tuple(_status_error(e, _at(_at(path, "errors"), i)) for i, e in enumerate(errors)),
        envelope=envelope,
    )


def _other(envelope: JSONObject, data: JSONObject, kind: str) -> OtherEvent:
    """An envelope type botkit does not handle: never an error, whatever else it carries."""
    try:
        phone_number_id = _phone_number_id(envelope, data)
    except PayloadError:
        phone_number_id = None
    return OtherEvent(
        event_id=_other_id(envelope), type=kind, phone_number_id=phone_number_id, envelope=envelope
    )


def _other_id(envelope: JSONObject) -> str:
    """The envelope `id`, else a hash of the envelope, so that a redelivery is still a duplicate."""
    given = envelope.get("id")
    if isinstance(given, str) and given.strip():
        if len(given) > MAX_IDENT:
            raise _wrong(f"at most {MAX_IDENT} characters", given, "id")
        return given
    if isinstance(given, int) and not isinstance(given, bool):
        return str(given)
    return "sha256:" + hashlib.sha256(codec.dumps(envelope)).hexdigest()


def parse_envelope(envelope: JSONObject) -> Event:
    """One modelled GoSendAPI envelope -> its event (also re-reads events stored in the inbox)."""
    kind = _ident(envelope, "type", "")
    data = _object(envelope, "data", "")
    if kind == MESSAGE_RECEIVED:
        return _received(envelope, data, _Where())
    if _is_status(kind, data):
        return _status(envelope, data, kind, "data.status")
    return _other(envelope, data, kind)


# --- Meta-native bodies ------------------------------------------------------------------


def _meta_values(body: JSONObject) -> Iterator[tuple[JSONObject, str]]:
    """Every `entry[].changes[].value`, with its path."""
    for i, raw_entry in enumerate(_array(body, "entry", "")):
        entry_path = _at("entry", i)
        changes = _array(_as_object(raw_entry, entry_path), "changes", entry_path)
        for j, raw_change in enumerate(changes):
            path = _at(_at(entry_path, "changes"), j)
            yield _object(_as_object(raw_change, path), "value", path), _at(path, "value")


def _meta_envelope(event_id: str, kind: str, phone_number_id: str, data: JSONObject) -> JSONObject:
    """The modelled envelope for one item of a Meta-native body."""
    return {
        "id": event_id,
        "type": kind,
        "created_at": None,
        "phone_number_id": phone_number_id,
        "data": data,
    }


_CONTACT_BYTES = 512  # Meta's contacts are ~100 bytes; a bigger one is cut to its wa_id


@dataclass(frozen=True, slots=True)
class _MetaValue:
    """What every message of one change value shares, read once per value (not per message:
    a body of many messages and many contacts once took minutes, each message scanning the
    whole `contacts` list)."""

    path: str
    phone_number_id: str
    contacts: dict[str, tuple[JSONObject, str]]


def _contact_index(value: JSONObject, path: str) -> dict[str, tuple[JSONObject, str]]:
    """The `contacts` of a change value by `wa_id` (the first of each), with their paths.

    Contacts that cannot be matched to a message (not objects, no string `wa_id`) are left
    out, not refused: a message without a contact reads as its sender. A contact goes into
    the envelope of every message from its user, so a large one is cut to its `wa_id`: one
    contact repeated in thousands of envelopes would multiply what a body costs to store.
    """
    given = value.get("contacts")
    where = _at(path, "contacts")
    index: dict[str, tuple[JSONObject, str]] = {}
    for i, raw in enumerate(given if isinstance(given, list) else ()):
        wa_id = raw.get("wa_id") if isinstance(raw, dict) else None
        if isinstance(raw, dict) and isinstance(wa_id, str) and wa_id not in index:
            small = len(codec.dumps(raw)) <= _CONTACT_BYTES
            index[wa_id] = (raw if small else {"wa_id": wa_id}, _at(where, i))
    return index


def _meta_message(raw: JSON, path: str, value: _MetaValue) -> InboundMessage:
    """One `messages[]` item, matched to its contact by `wa_id` == `from` (a dict lookup)."""
    message = _as_object(raw, path)
    sender = _sender(message, path)
    message_id = _ident(message, "id", path)
    contact, contact_path = value.contacts.get(sender) or ({"wa_id": sender}, path)
    data: JSONObject = {"contact": contact, "message": message}
    event_id = _META_ID_PREFIX + message_id
    envelope = _meta_envelope(event_id, MESSAGE_RECEIVED, value.phone_number_id, data)
    return _received(envelope, data, _Where(message=path, contact=contact_path))


def _meta_status(raw: JSON, path: str, value: _MetaValue) -> StatusUpdate:
    """One `statuses[]` item; its status names the event type."""
    item = _as_object(raw, path)
    status_id = _ident(item, "id", path)
    status = _ident(item, "status", path).strip().lower()
    event_id = _META_ID_PREFIX + _status_key(status_id, status)
    kind = _STATUS_PREFIX + status
    data: JSONObject = {"status": item}
    envelope = _meta_envelope(event_id, kind, value.phone_number_id, data)
    return _status(envelope, data, kind, path)


def _meta_phone_number_id(value: JSONObject, path: str) -> str:
    """`metadata.phone_number_id` of a change value."""
    metadata = _object(value, "metadata", path)
    where = _at(path, "metadata.phone_number_id")
    found = _opt_numeric_id(metadata, "phone_number_id", _at(path, "metadata"))
    if found is None:
        raise PayloadError("required field is missing", path=where)
    return check_phone_number_id(found, where)


def _meta_events(value: JSONObject, path: str) -> list[Event]:
    """The messages, then the statuses, of one change value.

    A value with neither (account updates, template statuses, calls...) gives no event and
    needs no metadata: only messages and statuses are read.
    """
    messages = _opt_array(value, "messages", path)
    statuses = _opt_array(value, "statuses", path)
    if not messages and not statuses:
        return []
    shared = _MetaValue(path, _meta_phone_number_id(value, path), _contact_index(value, path))
    events: list[Event] = [
        _meta_message(raw, _at(_at(path, "messages"), i), shared) for i, raw in enumerate(messages)
    ]
    events += [
        _meta_status(raw, _at(_at(path, "statuses"), i), shared) for i, raw in enumerate(statuses)
    ]
    return events


def _parse_meta(body: JSONObject) -> list[Event]:
    """Every message and status of a Meta-native body, in order."""
    if body["object"] != META_OBJECT:
        raise _wrong(repr(META_OBJECT), body["object"], "object")
    return [event for value, path in _meta_values(body) for event in _meta_events(value, path)]


# --- bodies ------------------------------------------------------------------------------


def _decode(body: bytes | str) -> JSONObject:
    """The JSON object in a body; malformed JSON is an error that says where."""
    try:
        document = codec.loads(body, max_depth=codec.MAX_DEPTH)
    except codec.DecodeError as exc:
        raise PayloadError(f"malformed JSON: {exc}") from exc
    except codec.NestingError as exc:  # it could not be stored (nor is it the provider's)
        raise PayloadError(str(exc)) from exc
    if not isinstance(document, dict):
        raise PayloadError(f"expected a JSON object at the top level, got {_describe(document)}")
    return document


def parse_body(body: bytes | str | JSONObject) -> list[Event]:
    """A webhook body -> its events: one for an envelope, one per message and status for Meta's."""
    document = body if isinstance(body, dict) else _decode(body)
    if "type" in document and "data" in document:
        return [parse_envelope(document)]
    if "object" in document and "entry" in document:
        return _parse_meta(document)
    keys = ", ".join(sorted(document)[:10]) or "none"
    raise PayloadError(
        "neither a GoSendAPI envelope (needs 'type' and 'data') nor a Meta webhook body "
        f"(needs 'object' and 'entry'); top-level keys: {keys}"
    )
