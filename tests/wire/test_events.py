"""Tests for botkit.wire.events: every webhook fixture, the tolerated variants, and each error."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import pytest

from botkit import codec
from botkit.exceptions import PayloadError
from botkit.wire.events import (
    MESSAGE_DELIVERED,
    MESSAGE_FAILED,
    MESSAGE_READ,
    MESSAGE_RECEIVED,
    MESSAGE_SENT,
    STATUS_EVENTS,
    ButtonTap,
    Contact,
    ContactsInput,
    Event,
    InboundMessage,
    LocationInput,
    MediaInput,
    OtherEvent,
    QuickReplyTap,
    RowPick,
    StatusError,
    StatusUpdate,
    TextInput,
    UnsupportedInput,
    parse_body,
    parse_envelope,
)

JUAN = Contact(wa_id="5491140123456", name="Juan", user_id=None)
BUSINESS = "555123456789"
WEBHOOK_FILES = [
    "button_reply.json",
    "image.json",
    "list_reply.json",
    "location.json",
    "meta_native.json",
    "signed_body.bin",
    "status_delivered.json",
    "status_failed.json",
    "status_read.json",
    "template_quick_reply.json",
    "text.json",
]
NOT_A_WEBHOOK = {"signed_body.json"}  # the signature test vector, not a body


def load(fixtures_dir: Path, name: str) -> Any:
    """A fresh copy of a fixture's JSON, safe to mutate."""
    return codec.loads((fixtures_dir / name).read_bytes())


def only(events: list[Event]) -> Event:
    """The single event of a body."""
    assert len(events) == 1, events
    return events[0]


def message_of(fixtures_dir: Path, name: str) -> InboundMessage:
    """The InboundMessage of an envelope fixture, parsed from its raw bytes."""
    event = only(parse_body((fixtures_dir / name).read_bytes()))
    assert isinstance(event, InboundMessage)
    return event


def status_of(fixtures_dir: Path, name: str) -> StatusUpdate:
    """The StatusUpdate of an envelope fixture, parsed from its raw bytes."""
    event = only(parse_body((fixtures_dir / name).read_bytes()))
    assert isinstance(event, StatusUpdate)
    return event


def walk(doc: Any, dotted: str) -> tuple[Any, str | int]:
    """The container holding `dotted` (``a.b.0.c``) and the last key."""
    *parents, last = dotted.split(".")
    for key in parents:
        doc = doc[int(key)] if key.isdigit() else doc[key]
    return doc, int(last) if last.isdigit() else last


def with_value(doc: Any, dotted: str, value: Any) -> Any:
    """A copy of `doc` with `dotted` set to `value`."""
    doc = copy.deepcopy(doc)
    parent, key = walk(doc, dotted)
    parent[key] = value
    return doc


def without(doc: Any, dotted: str) -> Any:
    """A copy of `doc` without `dotted`."""
    doc = copy.deepcopy(doc)
    parent, key = walk(doc, dotted)
    del parent[key]
    return doc


def received(message: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A message.received envelope around a Meta `messages[]` item."""
    base = {"from": "5491140123456", "id": "wamid.x", "timestamp": "1779199200"}
    return {
        "id": "evt_x",
        "type": MESSAGE_RECEIVED,
        "phone_number_id": BUSINESS,
        "data": {"message": {**base, **message}},
        **extra,
    }


def input_of(message: dict[str, Any]) -> Any:
    """The input parsed from an envelope around `message`."""
    event = parse_envelope(received(message))
    assert isinstance(event, InboundMessage)
    return event.input


# --- every fixture -----------------------------------------------------------------------


def test_every_webhook_fixture_is_covered(fixtures_dir: Path) -> None:
    present = {path.name for path in fixtures_dir.iterdir()}
    assert present - NOT_A_WEBHOOK == set(WEBHOOK_FILES)


def test_text(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "text.json")
    assert event.event_id == "evt_0001"
    assert event.phone_number_id == BUSINESS
    assert event.contact == JUAN
    assert event.wa_id == "5491140123456"
    assert event.message_id == "wamid.in.0001"
    assert event.timestamp == 1779199200
    assert event.context_id is None
    assert event.input == TextInput(body="Hola")
    assert event.envelope == load(fixtures_dir, "text.json")


def test_button_reply(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "button_reply.json")
    assert event.event_id == "evt_0002"
    assert event.input == ButtonTap(id="confirm_yes", title="Sí, confirmo")
    assert event.context_id == "wamid.out.0001"
    assert event.message_id == "wamid.in.0002"


def test_list_reply_keeps_the_description(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "list_reply.json")
    assert event.input == RowPick(id="lab", title="Laboratorio", description="Análisis de sangre")
    assert event.context_id == "wamid.out.0002"


def test_template_quick_reply(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "template_quick_reply.json")
    assert event.input == QuickReplyTap(payload="confirm_yes_apt_123", text="Confirmar")
    assert event.context_id == "wamid.out.0003"


def test_image(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "image.json")
    assert event.input == MediaInput(
        kind="image",
        id="2754859441498128",
        mime_type="image/jpeg",
        sha256="81d3bd8a8db4868c9520ed47186e8b7c5789e61ff79f7f834be6950b808a90d3",
        caption="Mi receta",
        filename=None,
    )


def test_location_has_float_coordinates(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "location.json")
    assert event.input == LocationInput(
        latitude=-34.6037, longitude=-58.3816, name="Obelisco", address="Av. 9 de Julio s/n, CABA"
    )
    assert isinstance(event.input, LocationInput)
    assert isinstance(event.input.latitude, float)


@pytest.mark.parametrize(
    ("name", "event_id", "status", "message_id"),
    [
        ("status_delivered.json", "evt_0007", "delivered", "wamid.out.0001"),
        ("status_read.json", "evt_0008", "read", "wamid.out.0001"),
        ("status_failed.json", "evt_0009", "failed", "wamid.out.0004"),
    ],
)
def test_statuses(
    fixtures_dir: Path, name: str, event_id: str, status: str, message_id: str
) -> None:
    event = status_of(fixtures_dir, name)
    assert event.event_id == event_id
    assert event.status == status
    assert event.message_id == message_id
    assert event.phone_number_id == BUSINESS
    assert event.recipient_id == "5491140123456"
    assert event.wa_id == "5491140123456"
    assert event.timestamp == 1779199200
    assert event.envelope == load(fixtures_dir, name)


def test_failed_status_carries_the_error(fixtures_dir: Path) -> None:
    event = status_of(fixtures_dir, "status_failed.json")
    assert event.errors == (
        StatusError(
            code=131047,
            title="Re-engagement message",
            message="More than 24 hours have passed since the recipient last replied",
        ),
    )
    assert status_of(fixtures_dir, "status_read.json").errors == ()


def test_meta_native_body_gives_two_messages_and_one_status(fixtures_dir: Path) -> None:
    events = parse_body((fixtures_dir / "meta_native.json").read_bytes())
    assert [type(event) for event in events] == [InboundMessage, InboundMessage, StatusUpdate]
    text, tap, status = events
    assert isinstance(text, InboundMessage)
    assert isinstance(tap, InboundMessage)
    assert isinstance(status, StatusUpdate)
    assert text.event_id == "meta:wamid.in.0010"
    assert tap.event_id == "meta:wamid.in.0011"
    assert status.event_id == "meta:status:wamid.out.0001:read"
    juan = Contact(wa_id="5491140123456", name="Juan", user_id="AR.bsuid.8f3a1c")
    assert text.contact == juan
    assert tap.contact == juan
    assert text.input == TextInput(body="Hola")
    assert tap.input == ButtonTap(id="reschedule", title="Reprogramar")
    assert tap.context_id == "wamid.out.0001"
    assert {text.phone_number_id, tap.phone_number_id, status.phone_number_id} == {BUSINESS}
    assert (status.status, status.message_id, status.recipient_id) == (
        "read",
        "wamid.out.0001",
        "5491140123456",
    )


def test_meta_native_items_get_a_modelled_envelope(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    value = body["entry"][0]["changes"][0]["value"]
    text, _, status = parse_body(body)
    assert text.envelope == {
        "id": "meta:wamid.in.0010",
        "type": MESSAGE_RECEIVED,
        "created_at": None,
        "phone_number_id": BUSINESS,
        "data": {"contact": value["contacts"][0], "message": value["messages"][0]},
    }
    assert status.envelope["type"] == MESSAGE_READ
    assert status.envelope["data"] == {"status": value["statuses"][0]}


def test_signed_body_bin_is_the_button_reply(fixtures_dir: Path) -> None:
    event = message_of(fixtures_dir, "signed_body.bin")
    assert event == message_of(fixtures_dir, "button_reply.json")
    assert event.input == ButtonTap(id="confirm_yes", title="Sí, confirmo")


@pytest.mark.parametrize("name", WEBHOOK_FILES)
def test_every_event_round_trips_through_its_envelope(fixtures_dir: Path, name: str) -> None:
    events = parse_body((fixtures_dir / name).read_bytes())
    assert events
    for event in events:
        assert parse_envelope(event.envelope) == event


def test_body_may_be_bytes_str_or_an_object(fixtures_dir: Path) -> None:
    raw = (fixtures_dir / "text.json").read_bytes()
    assert parse_body(raw) == parse_body(raw.decode()) == parse_body(codec.loads(raw))


def test_status_constants() -> None:
    assert {MESSAGE_SENT, MESSAGE_DELIVERED, MESSAGE_READ, MESSAGE_FAILED} == STATUS_EVENTS
    assert MESSAGE_SENT == "whatsapp.message.sent"
    assert MESSAGE_DELIVERED == "whatsapp.message.delivered"
    assert MESSAGE_FAILED == "whatsapp.message.failed"


# --- other events and other inputs -------------------------------------------------------


def test_unknown_envelope_type_is_another_event() -> None:
    envelope: dict[str, Any] = {
        "id": "evt_conv",
        "type": "whatsapp.conversation.created",
        "phone_number_id": BUSINESS,
        "data": {"conversation": {"id": "c1"}},
    }
    event = only(parse_body(codec.dumps(envelope)))
    assert event == OtherEvent(
        event_id="evt_conv",
        type="whatsapp.conversation.created",
        phone_number_id=BUSINESS,
        envelope=envelope,
    )
    assert parse_envelope(event.envelope) == event


def test_unknown_envelope_type_is_never_an_error() -> None:
    envelope = {"type": "whatsapp.future.thing", "data": {"metadata": "odd", "x": [1]}}
    event = only(parse_body(codec.dumps(envelope)))
    assert isinstance(event, OtherEvent)
    assert event.phone_number_id is None
    assert event.event_id.startswith("sha256:")
    assert event.event_id == only(parse_body(codec.dumps(envelope))).event_id
    other = parse_envelope({"type": "whatsapp.future.thing", "data": {"x": [2]}})
    assert other.event_id != event.event_id


def test_other_event_with_a_numeric_id_keeps_it() -> None:
    event = parse_envelope({"id": 42, "type": "whatsapp.phone_number.created", "data": {}})
    assert event == OtherEvent(
        event_id="42",
        type="whatsapp.phone_number.created",
        phone_number_id=None,
        envelope={"id": 42, "type": "whatsapp.phone_number.created", "data": {}},
    )


def test_unknown_message_type_keeps_the_raw_item() -> None:
    reaction = {"type": "reaction", "reaction": {"message_id": "wamid.out.1", "emoji": "👍"}}
    envelope = received(reaction)
    event = parse_envelope(envelope)
    assert isinstance(event, InboundMessage)
    assert event.input == UnsupportedInput(
        type="reaction",
        raw=envelope["data"]["message"],
        reason="botkit does not read messages of type 'reaction'",
    )
    assert isinstance(event.input, UnsupportedInput)
    assert event.input.raw["reaction"] == {"message_id": "wamid.out.1", "emoji": "👍"}


def test_metas_unsupported_type_is_unsupported_input() -> None:
    item = {"type": "unsupported", "errors": [{"code": 131051, "title": "Message type unknown"}]}
    result = input_of(item)
    assert isinstance(result, UnsupportedInput)
    assert result.type == "unsupported"
    assert result.raw["errors"] == item["errors"]
    assert result.errors == (StatusError(code=131051, title="Message type unknown", message=None),)


def test_unknown_interactive_subtype_keeps_the_raw_item() -> None:
    interactive = {"type": "nfm_reply", "nfm_reply": {"response_json": "{}", "name": "flow"}}
    result = input_of({"type": "interactive", "interactive": interactive})
    assert isinstance(result, UnsupportedInput)
    assert result.type == "interactive.nfm_reply"
    assert result.reason == "botkit does not read interactive replies of type 'nfm_reply'"
    assert result.raw["interactive"] == interactive
    assert result.raw["id"] == "wamid.x"


def test_contacts_input() -> None:
    card: dict[str, Any] = {
        "name": {"formatted_name": "Ana"},
        "phones": [{"phone": "+54 9 11 4444 5555"}],
    }
    assert input_of({"type": "contacts", "contacts": [card]}) == ContactsInput(contacts=(card,))


@pytest.mark.parametrize("kind", ["video", "audio", "sticker"])
def test_media_kinds_without_caption(kind: str) -> None:
    media = {"id": f"m-{kind}", "mime_type": f"{kind}/x", "sha256": "ab"}
    assert input_of({"type": kind, kind: media}) == MediaInput(
        kind=kind, id=f"m-{kind}", mime_type=f"{kind}/x", sha256="ab", caption=None, filename=None
    )


def test_document_has_a_filename() -> None:
    document = {"id": "d1", "mime_type": "application/pdf", "filename": "receta.pdf"}
    result = input_of({"type": "document", "document": document})
    assert result == MediaInput(
        kind="document",
        id="d1",
        mime_type="application/pdf",
        sha256=None,
        caption=None,
        filename="receta.pdf",
    )


# --- tolerated variants ------------------------------------------------------------------


def test_envelope_without_id_is_keyed_by_the_wamid(fixtures_dir: Path) -> None:
    event = only(parse_body(without(load(fixtures_dir, "text.json"), "id")))
    assert event.event_id == "wamid:wamid.in.0001"


def test_status_envelope_without_id_is_keyed_by_message_and_status(fixtures_dir: Path) -> None:
    event = only(parse_body(without(load(fixtures_dir, "status_delivered.json"), "id")))
    assert event.event_id == "status:wamid.out.0001:delivered"


def test_envelope_without_contact_uses_the_sender(fixtures_dir: Path) -> None:
    event = message_of_doc(without(load(fixtures_dir, "text.json"), "data.contact"))
    assert event.contact == Contact(wa_id="5491140123456", name=None, user_id=None)


def test_contact_user_id_is_kept_in_an_envelope(fixtures_dir: Path) -> None:
    doc = with_value(load(fixtures_dir, "text.json"), "data.contact.user_id", "AR.bsuid.1")
    assert message_of_doc(doc).contact.user_id == "AR.bsuid.1"


@pytest.mark.parametrize(
    "place",
    [
        {"data": {"phone_number_id": BUSINESS}},
        {"data": {"metadata": {"phone_number_id": BUSINESS}}},
        {"top": 555123456789},
    ],
)
def test_phone_number_id_may_sit_elsewhere(fixtures_dir: Path, place: dict[str, Any]) -> None:
    doc = without(load(fixtures_dir, "text.json"), "phone_number_id")
    if "top" in place:
        doc["phone_number_id"] = place["top"]
    else:
        doc["data"].update(place["data"])
    assert message_of_doc(doc).phone_number_id == BUSINESS


def test_timestamp_may_be_a_number(fixtures_dir: Path) -> None:
    doc = with_value(load(fixtures_dir, "text.json"), "data.message.timestamp", 1779199201)
    assert message_of_doc(doc).timestamp == 1779199201


def test_timestamp_may_be_a_whole_float(fixtures_dir: Path) -> None:
    doc = with_value(load(fixtures_dir, "text.json"), "data.message.timestamp", 1779199202.0)
    assert message_of_doc(doc).timestamp == 1779199202


def test_coordinates_may_be_numeric_strings(fixtures_dir: Path) -> None:
    doc = with_value(load(fixtures_dir, "location.json"), "data.message.location.latitude", "-34.5")
    result = message_of_doc(doc).input
    assert isinstance(result, LocationInput)
    assert result.latitude == -34.5


def test_status_field_wins_over_the_envelope_type(fixtures_dir: Path) -> None:
    doc = with_value(load(fixtures_dir, "status_delivered.json"), "data.status.status", "READ")
    event = only(parse_body(doc))
    assert isinstance(event, StatusUpdate)
    assert event.status == "read"


def test_status_may_come_from_the_envelope_type_alone(fixtures_dir: Path) -> None:
    event = only(parse_body(without(load(fixtures_dir, "status_read.json"), "data.status.status")))
    assert isinstance(event, StatusUpdate)
    assert event.status == "read"


def test_unknown_status_is_kept_lower_cased(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    body["entry"][0]["changes"][0]["value"]["statuses"][0]["status"] = "Deleted"
    status = parse_body(body)[2]
    assert isinstance(status, StatusUpdate)
    assert status.status == "deleted"
    assert status.event_id == "meta:status:wamid.out.0001:deleted"
    assert status.envelope["type"] == "whatsapp.message.deleted"
    assert parse_envelope(status.envelope) == status


def test_interactive_without_type_is_named_by_its_reply(fixtures_dir: Path) -> None:
    doc = without(load(fixtures_dir, "list_reply.json"), "data.message.interactive.type")
    assert message_of_doc(doc).input == RowPick(
        id="lab", title="Laboratorio", description="Análisis de sangre"
    )


def test_list_reply_without_description(fixtures_dir: Path) -> None:
    dotted = "data.message.interactive.list_reply.description"
    doc = without(load(fixtures_dir, "list_reply.json"), dotted)
    assert message_of_doc(doc).input == RowPick(id="lab", title="Laboratorio", description=None)


def test_meta_message_without_contact_uses_the_sender(fixtures_dir: Path) -> None:
    body = without(load(fixtures_dir, "meta_native.json"), "entry.0.changes.0.value.contacts")
    text = parse_body(body)[0]
    assert isinstance(text, InboundMessage)
    assert text.contact == Contact(wa_id="5491140123456", name=None, user_id=None)
    assert parse_envelope(text.envelope) == text


def test_meta_message_is_matched_to_its_own_contact(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    contacts = body["entry"][0]["changes"][0]["value"]["contacts"]
    contacts.insert(0, {"wa_id": "5491100000000", "profile": {"name": "Ana"}})
    text = parse_body(body)[0]
    assert isinstance(text, InboundMessage)
    assert text.contact == Contact(wa_id="5491140123456", name="Juan", user_id="AR.bsuid.8f3a1c")
    data: Any = text.envelope["data"]
    assert data["contact"] == contacts[1]


def test_meta_body_with_several_entries_and_changes(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    value = body["entry"][0]["changes"][0]["value"]
    second = copy.deepcopy(value)
    second["messages"] = [{**value["messages"][0], "id": "wamid.in.0020"}]
    del second["statuses"]
    templates = {"field": "message_template_status_update", "value": {"event": "APPROVED"}}
    body["entry"][0]["changes"].append({"field": "messages", "value": second})
    body["entry"].append({"id": "2", "changes": [templates]})
    ids = [event.event_id for event in parse_body(body)]
    assert ids == [
        "meta:wamid.in.0010",
        "meta:wamid.in.0011",
        "meta:status:wamid.out.0001:read",
        "meta:wamid.in.0020",
    ]


def test_meta_body_without_messages_has_no_events() -> None:
    body: dict[str, Any] = {"object": "whatsapp_business_account", "entry": [{"changes": []}]}
    assert parse_body(body) == []


def message_of_doc(doc: dict[str, Any]) -> InboundMessage:
    """The InboundMessage of an envelope given as an object."""
    event = only(parse_body(doc))
    assert isinstance(event, InboundMessage)
    return event


# --- errors ------------------------------------------------------------------------------


def test_malformed_json_says_where() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_body(b'{"id": "evt",\n "type": }')
    assert "malformed JSON" in str(caught.value)
    assert "line 2 column" in str(caught.value)


def test_empty_body_is_malformed_json() -> None:
    with pytest.raises(PayloadError, match="malformed JSON"):
        parse_body(b"")


def test_top_level_must_be_an_object() -> None:
    with pytest.raises(PayloadError, match="expected a JSON object at the top level, got an array"):
        parse_body(b"[1, 2]")


def test_neither_shape_is_rejected() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_body(b'{"hello": "world"}')
    message = str(caught.value)
    assert "neither a GoSendAPI envelope (needs 'type' and 'data')" in message
    assert "nor a Meta webhook body (needs 'object' and 'entry')" in message
    assert "hello" in message


def bracketed(dotted: str) -> str:
    """The error path of a dotted test path: list indices in brackets."""
    return ".".join(f"[{key}]" if key.isdigit() else key for key in dotted.split(".")).replace(
        ".[", "["
    )


def error_for(fixtures_dir: Path, name: str, doc: Any) -> PayloadError:
    """The PayloadError that parsing `doc` (an edited fixture `name`) raises."""
    with pytest.raises(PayloadError) as caught:
        parse_body(codec.dumps(doc))
    return caught.value


MISSING = [
    ("text.json", "data.message"),
    ("text.json", "data.message.from"),
    ("text.json", "data.message.id"),
    ("text.json", "data.message.timestamp"),
    ("status_delivered.json", "data.status"),
    ("status_delivered.json", "data.status.id"),
    ("status_delivered.json", "data.status.recipient_id"),
    ("status_delivered.json", "data.status.timestamp"),
    ("meta_native.json", "entry.0.changes"),
    ("meta_native.json", "entry.0.changes.0.value"),
    ("meta_native.json", "entry.0.changes.0.value.metadata"),
    ("meta_native.json", "entry.0.changes.0.value.metadata.phone_number_id"),
    ("meta_native.json", "entry.0.changes.0.value.messages.1.from"),
    ("meta_native.json", "entry.0.changes.0.value.statuses.0.status"),
]


@pytest.mark.parametrize(("name", "dotted"), MISSING, ids=[f"{n}:{d}" for n, d in MISSING])
def test_a_missing_field_is_named(fixtures_dir: Path, name: str, dotted: str) -> None:
    error = error_for(fixtures_dir, name, without(load(fixtures_dir, name), dotted))
    assert error.path == bracketed(dotted)
    assert str(error) == f"{bracketed(dotted)}: required field is missing"


WRONG = [
    (
        "text.json",
        "data.message.timestamp",
        "yesterday",
        'Unix seconds (an integer or a string of digits), got string "yesterday"',
    ),
    ("text.json", "data.message.timestamp", True, "got boolean true"),
    ("text.json", "data.message.from", "", "expected a non-empty string"),
    ("text.json", "data", [], "expected an object, got an array"),
    ("text.json", "type", 7, "expected a string, got number 7"),
    ("text.json", "id", 5, "expected a string, got number 5"),
    ("text.json", "data.contact", "Juan", 'expected an object, got string "Juan"'),
    ("text.json", "data.contact.profile.name", 1, "expected a string, got number 1"),
    ("button_reply.json", "data.message.context", "wamid.out.0001", "expected an object"),
    ("status_delivered.json", "data.status.timestamp", "soon", "Unix seconds"),
    ("status_failed.json", "data.status.errors", {"code": 1}, "expected an array"),
    ("status_failed.json", "data.status.errors.0.code", "abc", "expected an integer"),
    ("meta_native.json", "object", "page", "expected 'whatsapp_business_account'"),
    # identifiers: lane keys and send targets are ASCII digits of a plausible length
    ("text.json", "phone_number_id", "pn-1", "a phone_number_id must be 6 to 20 ASCII digits"),
    ("text.json", "phone_number_id", "5" * 21, "6 to 20 ASCII digits"),
    ("text.json", "data.message.from", "+5491140123456", "7 to 15 ASCII digits"),
    ("text.json", "data.message.from", "juan", "WhatsApp id (the user's number)"),
    ("text.json", "data.message.from", "٥٤٩١١٤٠١٢٣٤٥٦", "7 to 15 ASCII digits"),
    ("text.json", "data.message.from", "5" * 16, "7 to 15 ASCII digits"),
    ("text.json", "data.contact.wa_id", "54 9 11 4012-3456", "7 to 15 ASCII digits"),
    ("status_read.json", "phone_number_id", "¹²³⁴⁵⁶⁷", "6 to 20 ASCII digits"),
    ("status_read.json", "data.status.recipient_id", "12", "7 to 15 ASCII digits"),
    ("meta_native.json", "entry.0.changes.0.value.metadata.phone_number_id", "x1", "6 to 20"),
    ("meta_native.json", "entry.0.changes.0.value.messages.1.from", "juan", "7 to 15"),
    ("meta_native.json", "entry.0.changes.0.value.statuses.0.recipient_id", "x", "7 to 15"),
    ("meta_native.json", "entry", {}, "expected an array, got an object"),
    ("meta_native.json", "entry.0.changes.0.value.contacts.0.profile.name", 5, "a string"),
    ("meta_native.json", "entry.0.changes.0.value.statuses.0.timestamp", "x", "Unix seconds"),
]


@pytest.mark.parametrize(
    ("name", "dotted", "value", "words"), WRONG, ids=[f"{c[0]}:{c[1]}={c[2]!r}" for c in WRONG]
)
def test_a_wrong_value_is_named(
    fixtures_dir: Path, name: str, dotted: str, value: Any, words: str
) -> None:
    error = error_for(fixtures_dir, name, with_value(load(fixtures_dir, name), dotted, value))
    assert error.path == bracketed(dotted)
    assert str(error).startswith(f"{bracketed(dotted)}: ")
    assert words in str(error)


@pytest.mark.parametrize(
    ("dotted", "value"),
    [("data.phone_number_id", "abc"), ("data.metadata.phone_number_id", "12345678901234567890123")],
)
def test_a_phone_number_id_elsewhere_is_checked_where_it_is(
    fixtures_dir: Path, dotted: str, value: str
) -> None:
    doc = without(load(fixtures_dir, "text.json"), "phone_number_id")
    doc["data"]["metadata"] = {}
    error = error_for(fixtures_dir, "text.json", with_value(doc, dotted, value))
    assert error.path == dotted
    assert "6 to 20 ASCII digits" in str(error)


def test_an_unknown_envelope_type_with_an_odd_phone_number_id_is_still_accepted() -> None:
    event = parse_envelope({"id": "e", "type": "whatsapp.x", "phone_number_id": "?", "data": {}})
    assert isinstance(event, OtherEvent)
    assert event.phone_number_id is None


@pytest.mark.parametrize("name", ["text.json", "status_read.json"])
def test_a_missing_phone_number_id_is_named(fixtures_dir: Path, name: str) -> None:
    error = error_for(fixtures_dir, name, without(load(fixtures_dir, name), "phone_number_id"))
    assert error.path == "phone_number_id"
    assert "missing" in str(error)
    assert "data.metadata.phone_number_id" in str(error)


# --- a message of an unexpected shape is unsupported, not a refused body ------------------

# (file, dotted path, value or MISSING, the message type, words of the reason)
MISSING_VALUE = object()
MALFORMED = [
    ("text.json", "data.message.type", MISSING_VALUE, "unknown", "got null"),
    ("text.json", "data.message.type", None, "unknown", "got null"),
    ("text.json", "data.message.type", 7, "unknown", "got number 7"),
    ("text.json", "data.message.type", " ", "unknown", 'got string " "'),
    ("text.json", "data.message.text", MISSING_VALUE, "text", "required field is missing"),
    ("text.json", "data.message.text.body", MISSING_VALUE, "text", "required field is missing"),
    ("text.json", "data.message.text.body", 5, "text", "expected a string, got number 5"),
    (
        "button_reply.json",
        "data.message.interactive",
        MISSING_VALUE,
        "interactive",
        "required field is missing",
    ),
    ("button_reply.json", "data.message.interactive", {}, "interactive", "missing"),
    ("button_reply.json", "data.message.interactive", "x", "interactive", "expected an object"),
    (
        "button_reply.json",
        "data.message.interactive.button_reply.id",
        MISSING_VALUE,
        "interactive",
        "required field is missing",
    ),
    ("button_reply.json", "data.message.interactive.button_reply.id", 3, "interactive", "number 3"),
    (
        "template_quick_reply.json",
        "data.message.button.payload",
        MISSING_VALUE,
        "button",
        "required field is missing",
    ),
    ("image.json", "data.message.image.id", MISSING_VALUE, "image", "required field is missing"),
    ("image.json", "data.message.image.caption", ["x"], "image", "got an array"),
    ("location.json", "data.message.location.latitude", "north", "location", "-90 to 90"),
    ("location.json", "data.message.location.longitude", MISSING_VALUE, "location", "missing"),
    ("location.json", "data.message.location.longitude", 200.5, "location", "got number 200.5"),
    ("location.json", "data.message.location.longitude", [1], "location", "got an array"),
]


@pytest.mark.parametrize(
    ("name", "dotted", "value", "kind", "words"),
    MALFORMED,
    ids=[f"{c[0]}:{c[1]}={'MISSING' if c[2] is MISSING_VALUE else repr(c[2])}" for c in MALFORMED],
)
def test_a_message_of_a_known_type_with_malformed_content_is_unsupported(
    fixtures_dir: Path, name: str, dotted: str, value: Any, kind: str, words: str
) -> None:
    original = load(fixtures_dir, name)
    doc = (
        without(original, dotted) if value is MISSING_VALUE else with_value(original, dotted, value)
    )
    event = message_of_doc(doc)
    assert isinstance(event.input, UnsupportedInput)
    assert event.input.type == kind
    assert event.input.raw == doc["data"]["message"]
    assert event.input.reason.startswith(bracketed(dotted).rsplit(".", 1)[0])
    assert words in event.input.reason
    # everything else about the message is still read: it reaches its user's conversation
    assert (event.wa_id, event.message_id, event.phone_number_id) == (
        "5491140123456",
        original["data"]["message"]["id"],
        BUSINESS,
    )
    assert parse_envelope(event.envelope) == event


def test_an_interactive_message_without_its_object_keeps_metas_errors() -> None:
    """What Meta sends when something went wrong on its side: the type, no content, errors."""
    errors = [
        {
            "code": 131000,
            "title": "Something went wrong",
            "message": "Something went wrong",
            "error_data": {"details": "Interactive message could not be processed"},
        },
        "not an error object",
        {"code": "not a number"},
    ]
    result = input_of({"type": "interactive", "errors": errors})
    assert isinstance(result, UnsupportedInput)
    assert result.type == "interactive"
    assert result.reason == "data.message.interactive: required field is missing"
    assert result.errors == (
        StatusError(code=131000, title="Something went wrong", message="Something went wrong"),
    )
    assert result.raw["errors"] == errors


def test_a_meta_body_with_one_malformed_message_keeps_the_others(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    messages = body["entry"][0]["changes"][0]["value"]["messages"]
    del messages[1]["interactive"]
    messages[0]["text"]["body"] = 5
    text, tap, status = parse_body(codec.dumps(body))
    assert isinstance(text, InboundMessage) and isinstance(tap, InboundMessage)
    assert isinstance(text.input, UnsupportedInput)
    assert text.input.reason == (
        "entry[0].changes[0].value.messages[0].text.body: expected a string, got number 5"
    )
    assert isinstance(tap.input, UnsupportedInput)
    assert tap.input.type == "interactive"
    assert tap.context_id == "wamid.out.0001"
    assert isinstance(status, StatusUpdate)


def test_parse_envelope_rejects_a_missing_data() -> None:
    with pytest.raises(PayloadError) as caught:
        parse_envelope({"id": "evt", "type": MESSAGE_RECEIVED})
    assert caught.value.path == "data"
    assert "missing" in str(caught.value)


def test_a_contact_card_that_is_not_an_object_is_unsupported() -> None:
    result = input_of({"type": "contacts", "contacts": ["Ana"]})
    assert isinstance(result, UnsupportedInput)
    assert result.reason.startswith("data.message.contacts[0]: expected an object")


# --- the cost of a body is linear in its size --------------------------------------------


def contacts_body(messages: int, contacts_each: int) -> bytes:
    """The shape of issue 10: each message's contact last among many (the old scan's worst)."""
    total = messages * contacts_each
    people = [{"profile": {"name": "A"}, "wa_id": str(5491100000000 + i)} for i in range(total)]
    items = [
        {"from": str(5491100000000 + total - 1 - i), "id": f"wamid.{i}", "timestamp": "1"}
        | {"type": "text", "text": {"body": "x"}}
        for i in range(messages)
    ]
    value = {"metadata": {"phone_number_id": BUSINESS}, "contacts": people, "messages": items}
    body = {"object": "whatsapp_business_account", "entry": [{"changes": [{"value": value}]}]}
    return codec.dumps(body)


def calls_to_parse(body: bytes) -> int:
    """How many Python function calls `parse_body` makes on `body`: its work, not its time."""
    calls = 0

    def count(frame: Any, event: str, arg: Any) -> None:
        nonlocal calls
        calls += event == "call"

    sys.setprofile(count)
    try:
        parse_body(body)
    finally:
        sys.setprofile(None)
    return calls


def test_parsing_work_is_linear_in_messages_and_contacts() -> None:
    """Doubling both the messages and the contacts doubles the work (the old scan: x4)."""
    small, large = contacts_body(50, 20), contacts_body(100, 20)
    small_calls, large_calls = calls_to_parse(small), calls_to_parse(large)
    assert len(large) / len(small) == pytest.approx(2, rel=0.05)
    assert large_calls / small_calls == pytest.approx(2, rel=0.05)
    for event, i in zip(parse_body(large), range(100), strict=True):
        assert isinstance(event, InboundMessage)
        assert event.contact == Contact(str(5491100000000 + 1999 - i), "A", None)


def test_a_large_contact_goes_into_each_envelope_as_its_wa_id_only(fixtures_dir: Path) -> None:
    """A contact is copied into the envelope of every message from its user; cut when large,
    so that storing a body's events costs at most a constant times the body's size."""
    body = load(fixtures_dir, "meta_native.json")
    contact = body["entry"][0]["changes"][0]["value"]["contacts"][0]
    contact["profile"]["name"] = "J" * 600
    text = parse_body(body)[0]
    assert isinstance(text, InboundMessage)
    assert text.contact == Contact(wa_id="5491140123456", name=None, user_id=None)
    data: Any = text.envelope["data"]
    assert data["contact"] == {"wa_id": "5491140123456"}


def test_a_body_nested_too_deep_to_be_stored_is_refused() -> None:
    """orjson decodes 1024 levels and encodes 254: acknowledged, such a body could not be
    stored (a 503, retried for days)."""
    deep = b"[" * 300 + b"]" * 300
    with pytest.raises(PayloadError, match="deeper than 64 levels"):
        parse_body(b'{"type": "whatsapp.future", "data": {"x": ' + deep + b"}}")


@pytest.mark.parametrize(
    "change",
    [
        {"field": "account_update", "value": {"phone_number": "15550001111", "event": "X"}},
        {"field": "message_template_status_update", "value": {"event": "APPROVED"}},
        {
            "field": "calls",
            "value": {
                "messaging_product": "whatsapp",
                "metadata": {"phone_number_id": BUSINESS},
                "contacts": [{"wa_id": "5491140123456"}],
                "calls": [{"id": "wacid.1", "from": "5491140123456", "event": "connect"}],
            },
        },
        {"field": "messages", "value": {"metadata": {}, "errors": [{"code": 131000}]}},
        {"field": "user_preferences", "value": {"user_preferences": [{"wa_id": "x"}]}},
    ],
)
def test_other_changes_in_a_meta_body_are_not_refused(
    fixtures_dir: Path, change: dict[str, Any]
) -> None:
    body = load(fixtures_dir, "meta_native.json")
    body["entry"][0]["changes"].append(change)
    body["entry"].append({"id": "2", "changes": [change]})
    assert len(parse_body(codec.dumps(body))) == 3


def test_contacts_that_match_no_message_are_not_read(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "meta_native.json")
    contacts = body["entry"][0]["changes"][0]["value"]["contacts"]
    contacts[:0] = ["odd", {"wa_id": 5}, {"profile": "x"}, {"wa_id": "x", "profile": 3}]
    text = parse_body(codec.dumps(body))[0]
    assert isinstance(text, InboundMessage)
    assert text.contact.name == "Juan"
