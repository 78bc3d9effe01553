"""Outbound message builders, validated against WhatsApp's limits when built.

Every builder is a frozen, slotted dataclass that checks itself in `__post_init__` and raises
MessageError naming the class, the field path, the limit and the offending value
(`Buttons.buttons: at most 3 reply buttons, got 4`). `payload()` is the object GoSendAPI expects
under the message's `type`, in Meta's Cloud API shape; `request_body()` wraps it for
`POST /v1/messages`; `message_from_payload()` is the inverse, so that a stored or received body is
rebuilt, and so re-validated. A path names a builder field when a limit is broken
(`List.sections[1].rows[0].title`) and the JSON key when a payload has the wrong shape
(`Buttons.action.buttons[0].reply: is required`).

Model choices, kept here so that they can change in one place:

- Contacts: Meta's `contacts` body is an array, not an object. `Contacts.payload()` keeps the
  JSONObject contract as `{"contacts": [...]}`; `request_body()` puts the bare array on the wire,
  and `message_from_payload("contacts", ...)` takes either form. Build request bodies with
  `request_body()`, never by hand.
- Template buttons: indexes 0 to 9. gosendapi.md shows "0".."2" (three buttons, as Meta's older
  docs said), but Meta now allows up to 10 buttons in a template, of which up to 10 quick replies
  (Meta's template components reference; Gupshup's and Bird's template docs restate it).
- Template headers take one parameter (a text header has one variable, a media header one
  asset); bodies take text, currency and date_time parameters; Payload only goes in a
  quick-reply button, which takes exactly one.
- Contacts: 1 to 257 cards per message (Meta's contacts-messages page).
"""

from __future__ import annotations

import copy
import hashlib
import mimetypes
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, TypeAlias, TypeVar, runtime_checkable

from botkit.exceptions import MessageError
from botkit.types import JSON, JSONObject

__all__ = [
    "MESSAGE_TYPES",
    "Audio",
    "Body",
    "Button",
    "Buttons",
    "Contacts",
    "Currency",
    "DateTime",
    "Document",
    "DocumentParam",
    "Header",
    "Image",
    "ImageParam",
    "List",
    "Location",
    "Message",
    "Parameter",
    "Payload",
    "Row",
    "Section",
    "Sticker",
    "Template",
    "TemplateButton",
    "Text",
    "TextParam",
    "Video",
    "VideoParam",
    "message_from_payload",
    "request_body",
]

MESSAGE_TYPES: frozenset[str] = frozenset(
    {
        "text",
        "template",
        "image",
        "video",
        "audio",
        "document",
        "sticker",
        "location",
        "interactive",
        "contacts",
    }
)

# WhatsApp's limits, in characters (Python len) or items: gosendapi.md "Interactive limits",
# Meta's Cloud API message reference for the rest.
_TEXT_BODY_MAX = 4096
_BUTTONS_BODY_MAX = 1024
_LIST_BODY_MAX = 4096
_HEADER_MAX = 60
_FOOTER_MAX = 60
_BUTTONS_MAX = 3
_BUTTON_ID_MAX = 256
_BUTTON_TITLE_MAX = 20
_LIST_BUTTON_MAX = 20
_SECTIONS_MAX = 10
_ROWS_MAX = 10
_ROW_ID_MAX = 200
_ROW_TITLE_MAX = 24
_ROW_DESCRIPTION_MAX = 72
_SECTION_TITLE_MAX = 24
_CAPTION_MAX = 1024
_CONTACTS_MAX = 257
_TEMPLATE_NAME_MAX = 512
_TEMPLATE_BUTTON_INDEX_MAX = 9
_HEADER_PARAMETERS_MAX = 1

_TEMPLATE_NAME = re.compile(r"[a-z0-9_]+")
_LANGUAGE = re.compile(r"[A-Za-z]{2,3}(?:[_-][A-Za-z0-9]{2,8})*")
_CURRENCY_CODE = re.compile(r"[A-Z]{3}")
_SUB_TYPE = re.compile(r"[a-z_]+")
_DIGITS = re.compile(r"[0-9]+")
_E164_DIGITS = re.compile(r"[1-9][0-9]{6,14}")

_T = TypeVar("_T")
_WHAT: dict[type, str] = {
    str: "a string",
    dict: "an object",
    list: "a list",
    bool: "a boolean",
    int: "an integer",
}


@runtime_checkable
class Message(Protocol):
    """What every outbound builder satisfies: a GoSendAPI type and the object named after it."""

    type: ClassVar[str]

    def payload(self) -> JSONObject:
        """The object sent under the message's type, in Meta's Cloud API shape."""
        ...


# ---------------------------------------------------------------------------------------------
# checks shared by the builders


def is_message(value: object) -> bool:
    """True for a builder of one of the ten GoSendAPI types (not for its class, or a dict)."""
    kind = getattr(type(value), "type", None)
    return (
        isinstance(kind, str)
        and kind in MESSAGE_TYPES
        and callable(getattr(value, "payload", None))
    )


def _error(owner: str, field: str, detail: str, limit: int | None = None) -> MessageError:
    """An error reading `Owner.field: detail`."""
    return MessageError(f"{owner}.{field}: {detail}", field=field, limit=limit)


def _kind(value: object) -> str:
    """The JSON-ish name of a value's type, for error messages."""
    return "null" if value is None else type(value).__name__


def _shown(value: str) -> str:
    """A value quoted for an error message, cut short when long."""
    return repr(value if len(value) <= 40 else value[:37] + "...")


def _check_text(owner: str, field: str, value: object, limit: int | None) -> None:
    """Requires a non-empty string of at most `limit` characters (any length when None)."""
    if not isinstance(value, str):
        raise _error(owner, field, f"expected a string, got {_kind(value)}", limit)
    if not value:
        bounds = f" (1 to {limit} characters)" if limit else ""
        raise _error(owner, field, f"must not be empty{bounds}", limit)
    if limit is not None and len(value) > limit:
        detail = f"at most {limit} characters, got {len(value)} ({_shown(value)})"
        raise _error(owner, field, detail, limit)


def _check_optional_text(owner: str, field: str, value: object, limit: int | None) -> None:
    """Like _check_text, but None is allowed."""
    if value is not None:
        _check_text(owner, field, value, limit)


def _plural(count: int, noun: str) -> str:
    """`1 row`, `2 rows`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _check_count(
    owner: str, field: str, items: Sequence[object], low: int, high: int, noun: str
) -> None:
    """Requires between `low` and `high` items."""
    if len(items) < low:
        raise _error(owner, field, f"at least {_plural(low, noun)}, got {len(items)}", low)
    if len(items) > high:
        raise _error(owner, field, f"at most {_plural(high, noun)}, got {len(items)}", high)


def _check_items(
    owner: str, field: str, items: Sequence[object], kind: type | tuple[type, ...]
) -> None:
    """Requires every item to be an instance of `kind`."""
    names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
    for i, item in enumerate(items):
        if not isinstance(item, kind):
            raise _error(owner, f"{field}[{i}]", f"expected {names}, got {_kind(item)}")


def _check_unique(owner: str, keyed: Iterable[tuple[str, str]], what: str) -> None:
    """Requires the values of (path, value) pairs to be distinct; names both places."""
    seen: dict[str, str] = {}
    for path, value in keyed:
        if value in seen:
            raise _error(
                owner, path, f"duplicate {what} {_shown(str(value))} (also at {seen[value]})"
            )
        seen[value] = path


def _freeze(obj: object, name: str, owner: str) -> tuple[Any, ...]:
    """Stores a sequence field as a tuple, so that the frozen builder cannot change under us."""
    value = getattr(obj, name)
    if isinstance(value, str | bytes | dict) or not isinstance(value, Iterable):
        raise _error(owner, name, f"expected a sequence, got {_kind(value)}")
    frozen = tuple(value)
    object.__setattr__(obj, name, frozen)
    return frozen


FILE_KEY = "botkit_file"  # in a payload: a local file the outbox uploads before sending


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file to upload once per business number and content (POST /v1/media), then reuse."""

    path: str
    sha256: str
    mime_type: str

    @classmethod
    def read(cls, owner: str, path: str | Path, mime_type: str | None) -> LocalFile:
        """Hashes the file now, so that every send of the same content shares one upload."""
        source = Path(path).resolve()
        try:
            digest = hashlib.sha256(source.read_bytes()).hexdigest()
        except OSError as exc:
            raise _error(owner, "path", f"cannot read {str(source)!r}: {exc.strerror}") from exc
        kind = mime_type or mimetypes.guess_type(source.name)[0]
        if not kind:
            raise _error(
                owner, "mime_type", f"cannot tell the type of {source.name!r}: give mime_type="
            )
        return cls(str(source), digest, kind)

    def json(self) -> JSONObject:
        """How the file travels in a stored payload."""
        return {"path": self.path, "sha256": self.sha256, "mime_type": self.mime_type}


def _media(link: str | None, id: str | None, file: LocalFile | None) -> JSONObject:
    return {FILE_KEY: file.json()} if file is not None else _source(link, id)


def _check_source(
    owner: str, link: str | None, id: str | None, file: LocalFile | None = None
) -> None:
    """Media comes from exactly one of a link, an uploaded media id, or a local file."""
    if file is not None:
        if link is not None or id is not None:
            raise _error(owner, "file", "give exactly one of link, id or a file, got several")
        return
    if (link is None) == (id is None):
        got = "both" if link is not None else "neither"
        raise _error(owner, "link", f"give exactly one of link or id, got {got}")
    if id is not None:
        _check_text(owner, "id", id, None)
        return
    _check_text(owner, "link", link, None)
    if not str(link).startswith(("https://", "http://")):
        raise _error(owner, "link", f"expected an http(s) URL, got {_shown(str(link))}")


def _source(link: str | None, id: str | None) -> JSONObject:
    """Meta's media object: `{"link": ...}` or `{"id": ...}`."""
    return {"link": link} if link is not None else {"id": id}


def _with(obj: JSONObject, **optional: JSON) -> JSONObject:
    """Adds the keys whose values are not None."""
    obj.update({key: value for key, value in optional.items() if value is not None})
    return obj


# ---------------------------------------------------------------------------------------------
# text and interactive messages


@dataclass(frozen=True, slots=True)
class Text:
    """A plain text message; `preview_url` asks WhatsApp to render a preview of its first link."""

    type: ClassVar[str] = "text"
    body: str
    preview_url: bool = False

    def __post_init__(self) -> None:
        _check_text("Text", "body", self.body, _TEXT_BODY_MAX)
        if not isinstance(self.preview_url, bool):
            raise _error(
                "Text", "preview_url", f"expected a boolean, got {_kind(self.preview_url)}"
            )

    def payload(self) -> JSONObject:
        """Meta's text object."""
        return {"body": self.body, "preview_url": self.preview_url}


@dataclass(frozen=True, slots=True)
class Button:
    """One reply button: `id` comes back in the tap's `button_reply.id`, `title` is its label."""

    id: str
    title: str

    def __post_init__(self) -> None:
        _check_text("Button", "id", self.id, _BUTTON_ID_MAX)
        if self.id != self.id.strip():
            raise _error("Button", "id", f"no leading or trailing spaces, got {self.id!r}")
        _check_text("Button", "title", self.title, _BUTTON_TITLE_MAX)

    def _json(self) -> JSONObject:
        return {"type": "reply", "reply": {"id": self.id, "title": self.title}}


def _interactive(
    kind: str, body: str, action: JSONObject, header: str | None, footer: str | None
) -> JSONObject:
    """Meta's interactive object, with a text header and a footer when given."""
    out: JSONObject = {"type": kind}
    if header is not None:
        out["header"] = {"type": "text", "text": header}
    out["body"] = {"text": body}
    if footer is not None:
        out["footer"] = {"text": footer}
    out["action"] = action
    return out


@dataclass(frozen=True, slots=True)
class Buttons:
    """An interactive message with 1 to 3 reply buttons."""

    type: ClassVar[str] = "interactive"
    body: str
    buttons: Sequence[Button]
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        buttons = _freeze(self, "buttons", "Buttons")
        _check_text("Buttons", "body", self.body, _BUTTONS_BODY_MAX)
        _check_items("Buttons", "buttons", buttons, Button)
        _check_count("Buttons", "buttons", buttons, 1, _BUTTONS_MAX, "reply button")
        _check_unique("Buttons", ((f"buttons[{i}].id", b.id) for i, b in enumerate(buttons)), "id")
        _check_optional_text("Buttons", "header", self.header, _HEADER_MAX)
        _check_optional_text("Buttons", "footer", self.footer, _FOOTER_MAX)

    @property
    def button_ids(self) -> tuple[str, ...]:
        """The buttons' ids, in order."""
        return tuple(button.id for button in self.buttons)

    def payload(self) -> JSONObject:
        """Meta's interactive object of type `button`."""
        action: JSONObject = {"buttons": [button._json() for button in self.buttons]}
        return _interactive("button", self.body, action, self.header, self.footer)


@dataclass(frozen=True, slots=True)
class Row:
    """One row of a list: `id` comes back in the pick's `list_reply.id`."""

    id: str
    title: str
    description: str | None = None

    def __post_init__(self) -> None:
        _check_text("Row", "id", self.id, _ROW_ID_MAX)
        _check_text("Row", "title", self.title, _ROW_TITLE_MAX)
        _check_optional_text("Row", "description", self.description, _ROW_DESCRIPTION_MAX)

    def _json(self) -> JSONObject:
        return _with({"id": self.id, "title": self.title}, description=self.description)


@dataclass(frozen=True, slots=True)
class Section:
    """A titled group of rows; the title is required when a list has more than one section."""

    title: str | None
    rows: Sequence[Row]

    def __post_init__(self) -> None:
        rows = _freeze(self, "rows", "Section")
        _check_optional_text("Section", "title", self.title, _SECTION_TITLE_MAX)
        _check_items("Section", "rows", rows, Row)
        _check_count("Section", "rows", rows, 1, _ROWS_MAX, "row")

    def _json(self) -> JSONObject:
        out: JSONObject = _with({}, title=self.title)
        out["rows"] = [row._json() for row in self.rows]
        return out


@dataclass(frozen=True, slots=True)
class List:
    """An interactive list: a button that opens up to 10 rows in up to 10 sections."""

    type: ClassVar[str] = "interactive"
    body: str
    button: str
    sections: Sequence[Section]
    header: str | None = None
    footer: str | None = None

    def __post_init__(self) -> None:
        sections = _freeze(self, "sections", "List")
        _check_text("List", "body", self.body, _LIST_BODY_MAX)
        _check_text("List", "button", self.button, _LIST_BUTTON_MAX)
        _check_items("List", "sections", sections, Section)
        _check_count("List", "sections", sections, 1, _SECTIONS_MAX, "section")
        self._check_rows(sections)
        _check_optional_text("List", "header", self.header, _HEADER_MAX)
        _check_optional_text("List", "footer", self.footer, _FOOTER_MAX)

    @staticmethod
    def _check_rows(sections: tuple[Section, ...]) -> None:
        total = sum(len(section.rows) for section in sections)
        if total > _ROWS_MAX:
            detail = f"List: at most {_ROWS_MAX} rows across all sections, got {total}"
            raise MessageError(detail, field="sections", limit=_ROWS_MAX)
        for i, section in enumerate(sections):
            if len(sections) > 1 and section.title is None:
                raise _error(
                    "List", f"sections[{i}].title", "required when a list has more than one section"
                )
        keyed = (
            (f"sections[{i}].rows[{j}].id", row.id)
            for i, section in enumerate(sections)
            for j, row in enumerate(section.rows)
        )
        _check_unique("List", keyed, "row id")

    @property
    def row_ids(self) -> tuple[str, ...]:
        """Every row's id, in order across the sections."""
        return tuple(row.id for section in self.sections for row in section.rows)

    def payload(self) -> JSONObject:
        """Meta's interactive object of type `list`."""
        action: JSONObject = {"button": self.button, "sections": [s._json() for s in self.sections]}
        return _interactive("list", self.body, action, self.header, self.footer)


# ---------------------------------------------------------------------------------------------
# templates


@dataclass(frozen=True, slots=True)
class TextParam:
    """A text value for a template variable."""

    text: str

    def __post_init__(self) -> None:
        _check_text("TextParam", "text", self.text, None)

    def _json(self) -> JSONObject:
        return {"type": "text", "text": self.text}


@dataclass(frozen=True, slots=True)
class Currency:
    """An amount that WhatsApp localises; `amount_1000` is the amount times 1000 (1.5 -> 1500)."""

    fallback_value: str
    code: str
    amount_1000: int

    def __post_init__(self) -> None:
        _check_text("Currency", "fallback_value", self.fallback_value, None)
        _check_text("Currency", "code", self.code, 3)
        if not _CURRENCY_CODE.fullmatch(self.code):
            raise _error(
                "Currency", "code", f"expected an ISO 4217 code such as 'USD', got {self.code!r}"
            )
        if isinstance(self.amount_1000, bool) or not isinstance(self.amount_1000, int):
            raise _error(
                "Currency", "amount_1000", f"expected an integer, got {_kind(self.amount_1000)}"
            )

    def _json(self) -> JSONObject:
        currency: JSONObject = {"fallback_value": self.fallback_value, "code": self.code}
        currency["amount_1000"] = self.amount_1000
        return {"type": "currency", "currency": currency}


@dataclass(frozen=True, slots=True)
class DateTime:
    """A date and time for a template variable, sent as its fallback text."""

    fallback_value: str

    def __post_init__(self) -> None:
        _check_text("DateTime", "fallback_value", self.fallback_value, None)

    def _json(self) -> JSONObject:
        return {"type": "date_time", "date_time": {"fallback_value": self.fallback_value}}


@dataclass(frozen=True, slots=True)
class ImageParam:
    """An image for a template's media header: a link or an uploaded media id."""

    link: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        _check_source("ImageParam", self.link, self.id)

    def _json(self) -> JSONObject:
        return {"type": "image", "image": _source(self.link, self.id)}


@dataclass(frozen=True, slots=True)
class VideoParam:
    """A video for a template's media header: a link or an uploaded media id."""

    link: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        _check_source("VideoParam", self.link, self.id)

    def _json(self) -> JSONObject:
        return {"type": "video", "video": _source(self.link, self.id)}


@dataclass(frozen=True, slots=True)
class DocumentParam:
    """A document for a template's media header, with the file name the user sees."""

    link: str | None = None
    id: str | None = None
    filename: str | None = None

    def __post_init__(self) -> None:
        _check_source("DocumentParam", self.link, self.id)
        _check_optional_text("DocumentParam", "filename", self.filename, None)

    def _json(self) -> JSONObject:
        document = _with(_source(self.link, self.id), filename=self.filename)
        return {"type": "document", "document": document}


@dataclass(frozen=True, slots=True)
class Payload:
    """A quick-reply button's payload: it comes back in the webhook's `button.payload` on a tap."""

    payload: str

    def __post_init__(self) -> None:
        _check_text("Payload", "payload", self.payload, None)

    def _json(self) -> JSONObject:
        return {"type": "payload", "payload": self.payload}


Parameter: TypeAlias = (
    "TextParam | Currency | DateTime | ImageParam | VideoParam | DocumentParam | Payload"
)
_PARAMETERS = (TextParam, Currency, DateTime, ImageParam, VideoParam, DocumentParam, Payload)
_HEADER_PARAMETERS = (TextParam, Currency, DateTime, ImageParam, VideoParam, DocumentParam)
_BODY_PARAMETERS = (TextParam, Currency, DateTime)


@dataclass(frozen=True, slots=True)
class Header:
    """The values for a template header's variable: one text, currency, date or media parameter."""

    parameters: Sequence[Parameter]

    def __post_init__(self) -> None:
        parameters = _freeze(self, "parameters", "Header")
        _check_items("Header", "parameters", parameters, _HEADER_PARAMETERS)
        _check_count("Header", "parameters", parameters, 1, _HEADER_PARAMETERS_MAX, "parameter")

    def _json(self) -> JSONObject:
        return {"type": "header", "parameters": [p._json() for p in self.parameters]}


@dataclass(frozen=True, slots=True)
class Body:
    """The values for a template body's {{1}}, {{2}}...: strictly in order."""

    parameters: Sequence[Parameter]

    def __post_init__(self) -> None:
        parameters = _freeze(self, "parameters", "Body")
        _check_items("Body", "parameters", parameters, _BODY_PARAMETERS)
        if not parameters:
            raise _error(
                "Body", "parameters", "at least 1 parameter, got 0 (leave the body out instead)", 1
            )

    def _json(self) -> JSONObject:
        return {"type": "body", "parameters": [p._json() for p in self.parameters]}


@dataclass(frozen=True, slots=True)
class TemplateButton:
    """The values for one of a template's buttons, by position; a quick reply takes one Payload."""

    sub_type: str
    index: int
    parameters: Sequence[Parameter]

    def __post_init__(self) -> None:
        parameters = _freeze(self, "parameters", "TemplateButton")
        _check_text("TemplateButton", "sub_type", self.sub_type, None)
        if not _SUB_TYPE.fullmatch(self.sub_type):
            detail = f"expected a lowercase name like 'quick_reply' or 'url', got {self.sub_type!r}"
            raise _error("TemplateButton", "sub_type", detail)
        self._check_index()
        kinds = (Payload,) if self.sub_type == "quick_reply" else _PARAMETERS
        _check_items("TemplateButton", "parameters", parameters, kinds)
        if self.sub_type == "quick_reply":
            _check_count("TemplateButton", "parameters", parameters, 1, 1, "Payload parameter")

    def _check_index(self) -> None:
        index = self.index
        if isinstance(index, bool) or not isinstance(index, int):
            raise _error("TemplateButton", "index", f"expected an integer, got {_kind(index)}")
        if not 0 <= index <= _TEMPLATE_BUTTON_INDEX_MAX:
            top = _TEMPLATE_BUTTON_INDEX_MAX
            detail = f"0 to {top} (a template has at most {top + 1} buttons), got {index}"
            raise _error("TemplateButton", "index", detail, _TEMPLATE_BUTTON_INDEX_MAX)

    def _json(self) -> JSONObject:
        parameters: JSON = [p._json() for p in self.parameters]
        return {
            "type": "button",
            "sub_type": self.sub_type,
            "index": str(self.index),
            "parameters": parameters,
        }


_COMPONENTS = (Header, Body, TemplateButton)


@dataclass(frozen=True, slots=True)
class Template:
    """An approved template, sendable at any time; `Template.of` builds the common cases."""

    type: ClassVar[str] = "template"
    name: str
    language: str
    components: Sequence[Header | Body | TemplateButton] = ()

    def __post_init__(self) -> None:
        components = _freeze(self, "components", "Template")
        _check_text("Template", "name", self.name, _TEMPLATE_NAME_MAX)
        if not _TEMPLATE_NAME.fullmatch(self.name):
            detail = f"only lowercase letters, digits and underscores, got {self.name!r}"
            raise _error("Template", "name", detail)
        _check_text("Template", "language", self.language, None)
        if not _LANGUAGE.fullmatch(self.language):
            raise _error(
                "Template",
                "language",
                f"expected a code such as 'en' or 'es_AR', got {self.language!r}",
            )
        _check_items("Template", "components", components, _COMPONENTS)
        _check_single(components, Header, "header")
        _check_single(components, Body, "body")
        keyed = (
            (f"components[{i}].index", str(c.index))
            for i, c in enumerate(components)
            if isinstance(c, TemplateButton)
        )
        _check_unique("Template", keyed, "button index")

    @classmethod
    def of(
        cls,
        name: str,
        language: str,
        body: Sequence[str | Parameter] = (),
        header: Sequence[str | Parameter] = (),
        quick_replies: Sequence[str] = (),
    ) -> Template:
        """A template from plain values: strings become TextParams, quick_replies[i] button i."""
        components: list[Header | Body | TemplateButton] = []
        if _values("header", header):
            components.append(Header([_as_parameter(value) for value in header]))
        if _values("body", body):
            components.append(Body([_as_parameter(value) for value in body]))
        for i, reply in enumerate(_values("quick_replies", quick_replies)):
            components.append(TemplateButton("quick_reply", i, [Payload(reply)]))
        return cls(name, language, components)

    @property
    def body_parameters(self) -> tuple[Parameter, ...]:
        """The body's parameters, in {{1}}, {{2}}... order; empty when the template has no body."""
        for component in self.components:
            if isinstance(component, Body):
                return tuple(component.parameters)
        return ()

    @property
    def header_parameters(self) -> tuple[Parameter, ...]:
        """The header's parameters; empty when the template has no header."""
        for component in self.components:
            if isinstance(component, Header):
                return tuple(component.parameters)
        return ()

    @property
    def quick_reply_payloads(self) -> tuple[str, ...]:
        """The quick-reply buttons' payloads, by button index."""
        buttons = sorted(
            (
                c
                for c in self.components
                if isinstance(c, TemplateButton) and c.sub_type == "quick_reply"
            ),
            key=lambda button: button.index,
        )
        return tuple(
            p.payload for button in buttons for p in button.parameters if isinstance(p, Payload)
        )

    def payload(self) -> JSONObject:
        """Meta's template object; `components` is left out when there are none."""
        out: JSONObject = {"name": self.name, "language": {"code": self.language}}
        if self.components:
            out["components"] = [component._json() for component in self.components]
        return out


def _check_single(components: tuple[object, ...], kind: type, what: str) -> None:
    """A template has at most one header and one body component."""
    places = [i for i, component in enumerate(components) if isinstance(component, kind)]
    if len(places) > 1:
        detail = f"at most one {what} component, got another (first at components[{places[0]}])"
        raise _error("Template", f"components[{places[1]}]", detail, 1)


def _values(field: str, values: Sequence[_T]) -> Sequence[_T]:
    """Refuses a bare string where Template.of expects a sequence of values."""
    if isinstance(values, str):
        raise _error(
            "Template", field, f"expected a sequence of values, got the string {_shown(values)}"
        )
    return values


def _as_parameter(value: str | Parameter) -> Parameter:
    """A string is a TextParam; parameters pass through."""
    return TextParam(value) if isinstance(value, str) else value


# ---------------------------------------------------------------------------------------------
# media, location, contacts


@dataclass(frozen=True, slots=True)
class Image:
    """An image by link or uploaded media id, with an optional caption."""

    type: ClassVar[str] = "image"
    link: str | None = None
    id: str | None = None
    caption: str | None = None
    file: LocalFile | None = None

    def __post_init__(self) -> None:
        _check_source("Image", self.link, self.id, self.file)
        _check_optional_text("Image", "caption", self.caption, _CAPTION_MAX)

    @classmethod
    def from_file(
        cls, path: str | Path, *, caption: str | None = None, mime_type: str | None = None
    ) -> Image:
        """A local file, uploaded once per business number and content, its id reused."""
        return cls(caption=caption, file=LocalFile.read("Image", path, mime_type))

    def payload(self) -> JSONObject:
        """Meta's media object."""
        return _with(_media(self.link, self.id, self.file), caption=self.caption)


@dataclass(frozen=True, slots=True)
class Video:
    """A video by link or uploaded media id, with an optional caption."""

    type: ClassVar[str] = "video"
    link: str | None = None
    id: str | None = None
    caption: str | None = None
    file: LocalFile | None = None

    def __post_init__(self) -> None:
        _check_source("Video", self.link, self.id, self.file)
        _check_optional_text("Video", "caption", self.caption, _CAPTION_MAX)

    @classmethod
    def from_file(
        cls, path: str | Path, *, caption: str | None = None, mime_type: str | None = None
    ) -> Video:
        """A local file, uploaded once per business number and content, its id reused."""
        return cls(caption=caption, file=LocalFile.read("Video", path, mime_type))

    def payload(self) -> JSONObject:
        """Meta's media object."""
        return _with(_media(self.link, self.id, self.file), caption=self.caption)


@dataclass(frozen=True, slots=True)
class Audio:
    """An audio file by link or uploaded media id (WhatsApp shows no caption on audio)."""

    type: ClassVar[str] = "audio"
    link: str | None = None
    id: str | None = None
    file: LocalFile | None = None

    def __post_init__(self) -> None:
        _check_source("Audio", self.link, self.id, self.file)

    @classmethod
    def from_file(cls, path: str | Path, *, mime_type: str | None = None) -> Audio:
        """A local file, uploaded once per business number and content, its id reused."""
        return cls(file=LocalFile.read("Audio", path, mime_type))

    def payload(self) -> JSONObject:
        """Meta's media object."""
        return _media(self.link, self.id, self.file)


@dataclass(frozen=True, slots=True)
class Document:
    """A document by link or uploaded media id, with an optional caption and shown file name."""

    type: ClassVar[str] = "document"
    link: str | None = None
    id: str | None = None
    caption: str | None = None
    filename: str | None = None
    file: LocalFile | None = None

    def __post_init__(self) -> None:
        _check_source("Document", self.link, self.id, self.file)
        _check_optional_text("Document", "caption", self.caption, _CAPTION_MAX)
        _check_optional_text("Document", "filename", self.filename, None)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        caption: str | None = None,
        filename: str | None = None,
        mime_type: str | None = None,
    ) -> Document:
        """A local file, uploaded once per business number and content, its id reused."""
        shown = filename or Path(path).name
        return cls(
            caption=caption, filename=shown, file=LocalFile.read("Document", path, mime_type)
        )

    def payload(self) -> JSONObject:
        """Meta's media object."""
        media = _media(self.link, self.id, self.file)
        return _with(media, caption=self.caption, filename=self.filename)


@dataclass(frozen=True, slots=True)
class Sticker:
    """A sticker by link or uploaded media id."""

    type: ClassVar[str] = "sticker"
    link: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        _check_source("Sticker", self.link, self.id)

    def payload(self) -> JSONObject:
        """Meta's media object."""
        return _source(self.link, self.id)


def _check_coordinate(field: str, value: object, bound: int) -> float:
    """A finite number within -bound..bound, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error("Location", field, f"expected a number, got {_kind(value)}", bound)
    if not -bound <= value <= bound:  # NaN compares false, so it fails here too
        raise _error("Location", field, f"-{bound} to {bound}, got {value}", bound)
    return float(value)


@dataclass(frozen=True, slots=True)
class Location:
    """A map pin, with an optional place name and address."""

    type: ClassVar[str] = "location"
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "latitude", _check_coordinate("latitude", self.latitude, 90))
        object.__setattr__(self, "longitude", _check_coordinate("longitude", self.longitude, 180))
        _check_optional_text("Location", "name", self.name, None)
        _check_optional_text("Location", "address", self.address, None)

    def payload(self) -> JSONObject:
        """Meta's location object."""
        out: JSONObject = {"latitude": self.latitude, "longitude": self.longitude}
        return _with(out, name=self.name, address=self.address)


@dataclass(frozen=True, slots=True)
class Contacts:
    """1 to 257 of Meta's contact cards; each needs `name.formatted_name`."""

    type: ClassVar[str] = "contacts"
    contacts: Sequence[JSONObject]

    def __post_init__(self) -> None:
        cards = _freeze(self, "contacts", "Contacts")
        _check_items("Contacts", "contacts", cards, dict)
        _check_count("Contacts", "contacts", cards, 1, _CONTACTS_MAX, "contact card")
        object.__setattr__(self, "contacts", tuple(copy.deepcopy(card) for card in cards))
        for i, card in enumerate(self.contacts):
            name = card.get("name")
            if not isinstance(name, dict):
                raise _error(
                    "Contacts", f"contacts[{i}].name", f"expected an object, got {_kind(name)}"
                )
            _check_text(
                "Contacts", f"contacts[{i}].name.formatted_name", name.get("formatted_name"), None
            )

    def payload(self) -> JSONObject:
        """`{"contacts": [card, ...]}`: Meta's body is the bare array, which request_body sends."""
        return {"contacts": [copy.deepcopy(card) for card in self.contacts]}


# ---------------------------------------------------------------------------------------------
# the request body and its inverse


def request_body(message: Message, *, to: str, phone_number_id: str) -> JSONObject:
    """The JSON body of `POST /v1/messages` sending `message` to `to` from `phone_number_id`."""
    if message.type not in MESSAGE_TYPES:
        raise _error("request_body", "type", f"unknown message type {message.type!r}")
    if not isinstance(to, str) or not _E164_DIGITS.fullmatch(to):
        detail = f"expected E.164 digits without '+', spaces or dashes (5491140123456), got {_shown(str(to))}"
        raise _error("request_body", "to", detail)
    if not isinstance(phone_number_id, str) or not _DIGITS.fullmatch(phone_number_id):
        raise _error(
            "request_body",
            "phone_number_id",
            f"expected Meta's numeric id, got {_shown(str(phone_number_id))}",
        )
    body = message.payload()
    wire: JSON = body["contacts"] if message.type == "contacts" else body
    return {"phone_number_id": phone_number_id, "to": to, "type": message.type, message.type: wire}


def message_from_payload(type: str, payload: JSON) -> Message:
    """Rebuilds (and so re-validates) a builder from a type and its payload, stored or received."""
    parse = _PARSERS.get(type) if isinstance(type, str) else None
    if parse is None:
        expected = ", ".join(sorted(MESSAGE_TYPES))
        raise _error(
            "message_from_payload",
            "type",
            f"unknown message type {type!r} (expected one of {expected})",
        )
    if type == "contacts" and isinstance(payload, list):
        payload = {"contacts": payload}
    if not isinstance(payload, dict):
        raise _error("message_from_payload", "payload", f"expected an object, got {_kind(payload)}")
    return parse(payload)


# Reading JSON: a bad shape names the JSON path inside the payload.


def _path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _expect(value: object, kind: type[_T], owner: str, field: str) -> _T:
    """`value` if it is a `kind` (bool is not an int), else a MessageError at `field`."""
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise _error(owner, field, f"expected {_WHAT.get(kind, kind.__name__)}, got {_kind(value)}")
    return value


def _req(obj: JSONObject, key: str, kind: type[_T], owner: str, path: str = "") -> _T:
    """A required key of the given type."""
    if obj.get(key) is None:
        raise _error(owner, _path(path, key), "is required")
    return _expect(obj[key], kind, owner, _path(path, key))


def _opt(obj: JSONObject, key: str, kind: type[_T], owner: str, path: str = "") -> _T | None:
    """An optional key of the given type; null counts as absent."""
    value = obj.get(key)
    return None if value is None else _expect(value, kind, owner, _path(path, key))


@contextmanager
def _at(owner: str, path: str) -> Iterator[None]:
    """Re-labels a nested builder's error (`Row.title: ...`) as `Owner.path.title: ...`.

    Errors already about `owner` (the payload's own shape) pass through unchanged.
    """
    try:
        yield
    except MessageError as exc:
        message = str(exc)
        if message.startswith((f"{owner}.", f"{owner}:")):
            raise
        field = _path(path, exc.field)
        detail = message.partition(": ")[2]
        raise MessageError(f"{owner}.{field}: {detail}", field=field, limit=exc.limit) from exc


def _text_from(p: JSONObject) -> Text:
    preview = _opt(p, "preview_url", bool, "Text")
    return Text(_req(p, "body", str, "Text"), bool(preview))


def _header_from(p: JSONObject, owner: str) -> str | None:
    header = _opt(p, "header", dict, owner)
    if header is None:
        return None
    kind = header.get("type", "text")
    if kind != "text":
        raise _error(owner, "header.type", f"only text headers are supported, got {kind!r}")
    return _req(header, "text", str, owner, "header")


def _footer_from(p: JSONObject, owner: str) -> str | None:
    footer = _opt(p, "footer", dict, owner)
    return None if footer is None else _req(footer, "text", str, owner, "footer")


def _body_from(p: JSONObject, owner: str) -> str:
    return _req(_req(p, "body", dict, owner), "text", str, owner, "body")


def _button_from(value: JSON, i: int) -> Button:
    path = f"action.buttons[{i}]"
    reply = _req(_expect(value, dict, "Buttons", path), "reply", dict, "Buttons", path)
    button_id = _req(reply, "id", str, "Buttons", f"{path}.reply")
    title = _req(reply, "title", str, "Buttons", f"{path}.reply")
    with _at("Buttons", f"buttons[{i}]"):
        return Button(button_id, title)


def _buttons_from(p: JSONObject) -> Buttons:
    action = _req(p, "action", dict, "Buttons")
    items = _req(action, "buttons", list, "Buttons", "action")
    buttons = [_button_from(item, i) for i, item in enumerate(items)]
    return Buttons(
        _body_from(p, "Buttons"), buttons, _header_from(p, "Buttons"), _footer_from(p, "Buttons")
    )


def _row_from(value: JSON, i: int, j: int) -> Row:
    path = f"action.sections[{i}].rows[{j}]"
    obj = _expect(value, dict, "List", path)
    row_id, title = _req(obj, "id", str, "List", path), _req(obj, "title", str, "List", path)
    description = _opt(obj, "description", str, "List", path)
    with _at("List", f"sections[{i}].rows[{j}]"):
        return Row(row_id, title, description)


def _section_from(value: JSON, i: int) -> Section:
    path = f"action.sections[{i}]"
    obj = _expect(value, dict, "List", path)
    rows = [_row_from(row, i, j) for j, row in enumerate(_req(obj, "rows", list, "List", path))]
    title = _opt(obj, "title", str, "List", path)
    with _at("List", f"sections[{i}]"):
        return Section(title, rows)


def _list_from(p: JSONObject) -> List:
    action = _req(p, "action", dict, "List")
    items = _req(action, "sections", list, "List", "action")
    sections = [_section_from(item, i) for i, item in enumerate(items)]
    button = _req(action, "button", str, "List", "action")
    return List(
        _body_from(p, "List"), button, sections, _header_from(p, "List"), _footer_from(p, "List")
    )


def _interactive_from(p: JSONObject) -> Message:
    kind = _req(p, "type", str, "interactive")
    if kind == "button":
        return _buttons_from(p)
    if kind == "list":
        return _list_from(p)
    raise _error("interactive", "type", f"only 'button' and 'list' can be built, got {kind!r}")


def _media_param_from(kind: str, obj: JSONObject, path: str) -> Parameter:
    media = _req(obj, kind, dict, "Template", path)
    where = _path(path, kind)
    link, media_id = (
        _opt(media, "link", str, "Template", where),
        _opt(media, "id", str, "Template", where),
    )
    if kind == "image":
        return ImageParam(link, media_id)
    if kind == "video":
        return VideoParam(link, media_id)
    return DocumentParam(link, media_id, _opt(media, "filename", str, "Template", where))


def _currency_from(obj: JSONObject, path: str) -> Currency:
    currency = _req(obj, "currency", dict, "Template", path)
    where = _path(path, "currency")
    fallback, code = (
        _req(currency, "fallback_value", str, "Template", where),
        _req(currency, "code", str, "Template", where),
    )
    return Currency(fallback, code, _req(currency, "amount_1000", int, "Template", where))


def _param_from(value: JSON, path: str) -> Parameter:
    obj = _expect(value, dict, "Template", path)
    kind = _req(obj, "type", str, "Template", path)
    with _at("Template", path):
        if kind == "text":
            return TextParam(_req(obj, "text", str, "Template", path))
        if kind == "currency":
            return _currency_from(obj, path)
        if kind == "date_time":
            return DateTime(
                _req(
                    _req(obj, "date_time", dict, "Template", path),
                    "fallback_value",
                    str,
                    "Template",
                    _path(path, "date_time"),
                )
            )
        if kind == "payload":
            return Payload(_req(obj, "payload", str, "Template", path))
        if kind in ("image", "video", "document"):
            return _media_param_from(kind, obj, path)
    expected = "text, currency, date_time, image, video, document or payload"
    raise _error("Template", f"{path}.type", f"expected {expected}, got {kind!r}")


def _index_from(obj: JSONObject, path: str) -> int:
    value = obj.get("index")
    if isinstance(value, str) and _DIGITS.fullmatch(value):
        return int(value)
    return _expect(value, int, "Template", f"{path}.index")


def _component_from(value: JSON, i: int) -> Header | Body | TemplateButton:
    path = f"components[{i}]"
    obj = _expect(value, dict, "Template", path)
    kind = _req(obj, "type", str, "Template", path).lower()
    items = _opt(obj, "parameters", list, "Template", path) or []
    parameters = [_param_from(item, f"{path}.parameters[{j}]") for j, item in enumerate(items)]
    with _at("Template", path):
        if kind == "header":
            return Header(parameters)
        if kind == "body":
            return Body(parameters)
        if kind == "button":
            return TemplateButton(
                _req(obj, "sub_type", str, "Template", path), _index_from(obj, path), parameters
            )
    raise _error("Template", f"{path}.type", f"expected 'header', 'body' or 'button', got {kind!r}")


def _language_from(p: JSONObject) -> str:
    language = p.get("language")
    if isinstance(language, str):
        return language
    return _req(_req(p, "language", dict, "Template"), "code", str, "Template", "language")


def _template_from(p: JSONObject) -> Template:
    items = _opt(p, "components", list, "Template") or []
    components = [_component_from(item, i) for i, item in enumerate(items)]
    return Template(_req(p, "name", str, "Template"), _language_from(p), components)


def _file_from(p: JSONObject, owner: str) -> LocalFile | None:
    found = _opt(p, FILE_KEY, dict, owner)
    if found is None:
        return None
    return LocalFile(
        _req(found, "path", str, owner, FILE_KEY),
        _req(found, "sha256", str, owner, FILE_KEY),
        _req(found, "mime_type", str, owner, FILE_KEY),
    )


def _image_from(p: JSONObject) -> Image:
    return Image(
        _opt(p, "link", str, "Image"),
        _opt(p, "id", str, "Image"),
        _opt(p, "caption", str, "Image"),
        _file_from(p, "Image"),
    )


def _video_from(p: JSONObject) -> Video:
    return Video(
        _opt(p, "link", str, "Video"),
        _opt(p, "id", str, "Video"),
        _opt(p, "caption", str, "Video"),
        _file_from(p, "Video"),
    )


def _audio_from(p: JSONObject) -> Audio:
    return Audio(_opt(p, "link", str, "Audio"), _opt(p, "id", str, "Audio"), _file_from(p, "Audio"))


def _document_from(p: JSONObject) -> Document:
    link, media_id = _opt(p, "link", str, "Document"), _opt(p, "id", str, "Document")
    caption, filename = _opt(p, "caption", str, "Document"), _opt(p, "filename", str, "Document")
    return Document(link, media_id, caption, filename, _file_from(p, "Document"))


def _sticker_from(p: JSONObject) -> Sticker:
    return Sticker(_opt(p, "link", str, "Sticker"), _opt(p, "id", str, "Sticker"))


def _coordinate_from(p: JSONObject, key: str) -> float:
    """A number, or a numeric string (some gateways send coordinates as text)."""
    value = p.get(key)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise _error("Location", key, f"expected a number, got {value!r}") from None
    if value is None:
        raise _error("Location", key, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _error("Location", key, f"expected a number, got {_kind(value)}")
    return float(value)


def _location_from(p: JSONObject) -> Location:
    latitude, longitude = _coordinate_from(p, "latitude"), _coordinate_from(p, "longitude")
    return Location(
        latitude, longitude, _opt(p, "name", str, "Location"), _opt(p, "address", str, "Location")
    )


def _contacts_from(p: JSONObject) -> Contacts:
    return Contacts(_req(p, "contacts", list, "Contacts"))


_PARSERS: dict[str, Callable[[JSONObject], Message]] = {
    "text": _text_from,
    "interactive": _interactive_from,
    "template": _template_from,
    "image": _image_from,
    "video": _video_from,
    "audio": _audio_from,
    "document": _document_from,
    "sticker": _sticker_from,
    "location": _location_from,
    "contacts": _contacts_from,
}
