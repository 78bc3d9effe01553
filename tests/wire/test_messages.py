"""Outbound message builders: WhatsApp's limits, Meta's payload shapes, and the way back."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from botkit.exceptions import MessageError
from botkit.types import JSONObject
from botkit.wire.messages import (
    MESSAGE_TYPES,
    Audio,
    Body,
    Button,
    Buttons,
    Contacts,
    Currency,
    DateTime,
    Document,
    DocumentParam,
    Header,
    Image,
    ImageParam,
    List,
    Location,
    Message,
    Payload,
    Row,
    Section,
    Sticker,
    Template,
    TemplateButton,
    Text,
    TextParam,
    Video,
    VideoParam,
    message_from_payload,
    request_body,
)

URL = "https://cdn.example.com/menu.png"
YES = Button("yes", "Yes")
ONE_SECTION = Section(None, [Row("r0", "Row")])


def card(name: str = "Ana Pérez") -> JSONObject:
    return {"name": {"formatted_name": name, "first_name": name.split()[0]}}


def shown(char: str, length: int) -> str:
    """How an error message quotes a value of `length` copies of `char`."""
    return repr(char * length) if length <= 40 else repr(char * 37 + "...")


def too_long(owner: str, field: str, char: str, limit: int) -> str:
    return (
        f"{owner}.{field}: at most {limit} characters, got {limit + 1} ({shown(char, limit + 1)})"
    )


def loose(value: object) -> Any:
    """Lets a test pass a value of the wrong type on purpose."""
    return value


def raises(build: Callable[[], object], field: str, limit: int | None, text: str) -> MessageError:
    """Asserts that `build` raises a MessageError with exactly this field, limit and message."""
    with pytest.raises(MessageError) as info:
        build()
    assert str(info.value) == text
    assert info.value.field == field
    assert info.value.limit == limit
    return info.value


# ---------------------------------------------------------------------------------------------
# every limit: passes at the limit, fails one past it

LIMITS = [
    pytest.param(
        lambda n: Buttons("Pick one", [Button(f"b{i}", f"B{i}") for i in range(n)]),
        3,
        "buttons",
        "Buttons.buttons: at most 3 reply buttons, got 4",
        id="reply buttons",
    ),
    pytest.param(
        lambda n: Button("b", "t" * n),
        20,
        "title",
        too_long("Button", "title", "t", 20),
        id="button title",
    ),
    pytest.param(
        lambda n: Button("i" * n, "T"),
        256,
        "id",
        too_long("Button", "id", "i", 256),
        id="button id",
    ),
    pytest.param(
        lambda n: List("Body", "m" * n, [ONE_SECTION]),
        20,
        "button",
        too_long("List", "button", "m", 20),
        id="list button",
    ),
    pytest.param(
        lambda n: List("Body", "Menu", [Section(f"S{i}", [Row(f"r{i}", "Row")]) for i in range(n)]),
        10,
        "sections",
        "List.sections: at most 10 sections, got 11",
        id="sections",
    ),
    pytest.param(
        lambda n: List(
            "Body",
            "Menu",
            [
                Section("A", [Row(f"a{i}", "Row") for i in range(5)]),
                Section("B", [Row(f"b{i}", "Row") for i in range(n - 5)]),
            ],
        ),
        10,
        "sections",
        "List: at most 10 rows across all sections, got 11",
        id="rows across sections",
    ),
    pytest.param(
        lambda n: Section("A", [Row(f"r{i}", "Row") for i in range(n)]),
        10,
        "rows",
        "Section.rows: at most 10 rows, got 11",
        id="rows in one section",
    ),
    pytest.param(
        lambda n: Row("i" * n, "T"), 200, "id", too_long("Row", "id", "i", 200), id="row id"
    ),
    pytest.param(
        lambda n: Row("r", "t" * n), 24, "title", too_long("Row", "title", "t", 24), id="row title"
    ),
    pytest.param(
        lambda n: Row("r", "T", "d" * n),
        72,
        "description",
        too_long("Row", "description", "d", 72),
        id="row description",
    ),
    pytest.param(
        lambda n: Section("s" * n, [Row("r", "T")]),
        24,
        "title",
        too_long("Section", "title", "s", 24),
        id="section title",
    ),
    pytest.param(
        lambda n: Buttons("Body", [YES], header="h" * n),
        60,
        "header",
        too_long("Buttons", "header", "h", 60),
        id="buttons header",
    ),
    pytest.param(
        lambda n: Buttons("Body", [YES], footer="f" * n),
        60,
        "footer",
        too_long("Buttons", "footer", "f", 60),
        id="buttons footer",
    ),
    pytest.param(
        lambda n: List("Body", "Menu", [ONE_SECTION], header="h" * n),
        60,
        "header",
        too_long("List", "header", "h", 60),
        id="list header",
    ),
    pytest.param(
        lambda n: List("Body", "Menu", [ONE_SECTION], footer="f" * n),
        60,
        "footer",
        too_long("List", "footer", "f", 60),
        id="list footer",
    ),
    pytest.param(
        lambda n: Buttons("b" * n, [YES]),
        1024,
        "body",
        too_long("Buttons", "body", "b", 1024),
        id="buttons body",
    ),
    pytest.param(
        lambda n: List("b" * n, "Menu", [ONE_SECTION]),
        4096,
        "body",
        too_long("List", "body", "b", 4096),
        id="list body",
    ),
    pytest.param(
        lambda n: Text("b" * n), 4096, "body", too_long("Text", "body", "b", 4096), id="text body"
    ),
    pytest.param(
        lambda n: Image(link=URL, caption="c" * n),
        1024,
        "caption",
        too_long("Image", "caption", "c", 1024),
        id="image caption",
    ),
    pytest.param(
        lambda n: Video(id="77", caption="c" * n),
        1024,
        "caption",
        too_long("Video", "caption", "c", 1024),
        id="video caption",
    ),
    pytest.param(
        lambda n: Document(id="77", caption="c" * n),
        1024,
        "caption",
        too_long("Document", "caption", "c", 1024),
        id="document caption",
    ),
    pytest.param(
        lambda n: Contacts([card(f"Person {i}") for i in range(n)]),
        257,
        "contacts",
        "Contacts.contacts: at most 257 contact cards, got 258",
        id="contact cards",
    ),
    pytest.param(
        lambda n: Header([TextParam(f"v{i}") for i in range(n)]),
        1,
        "parameters",
        "Header.parameters: at most 1 parameter, got 2",
        id="template header parameters",
    ),
    pytest.param(
        lambda n: Template("n" * n, "en"),
        512,
        "name",
        too_long("Template", "name", "n", 512),
        id="template name",
    ),
]


@pytest.mark.parametrize(("build", "limit", "field", "text"), LIMITS)
def test_a_limit_passes_at_the_limit(
    build: Callable[[int], object], limit: int, field: str, text: str
) -> None:
    assert build(limit) is not None


@pytest.mark.parametrize(("build", "limit", "field", "text"), LIMITS)
def test_a_limit_fails_one_past_it(
    build: Callable[[int], object], limit: int, field: str, text: str
) -> None:
    raises(lambda: build(limit + 1), field, limit, text)


def test_the_template_button_index_runs_from_0_to_9() -> None:
    assert TemplateButton("quick_reply", 9, [Payload("p")]).index == 9
    text = "TemplateButton.index: 0 to 9 (a template has at most 10 buttons), got 10"
    raises(lambda: TemplateButton("quick_reply", 10, [Payload("p")]), "index", 9, text)
    text = "TemplateButton.index: 0 to 9 (a template has at most 10 buttons), got -1"
    raises(lambda: TemplateButton("url", -1, [TextParam("x")]), "index", 9, text)


def test_ten_quick_replies_fit_and_an_eleventh_does_not() -> None:
    ten = Template.of("menu", "en", quick_replies=[f"p{i}" for i in range(10)])
    assert ten.quick_reply_payloads == tuple(f"p{i}" for i in range(10))
    text = "TemplateButton.index: 0 to 9 (a template has at most 10 buttons), got 10"
    raises(
        lambda: Template.of("menu", "en", quick_replies=[f"p{i}" for i in range(11)]),
        "index",
        9,
        text,
    )


def test_limits_count_characters_not_bytes() -> None:
    assert Button("si", "ñ" * 20).title == "ñ" * 20
    assert Row("r", "🍕" * 24).title == "🍕" * 24
    raises(
        lambda: Button("si", "ñ" * 21),
        "title",
        20,
        too_long("Button", "title", "ñ", 20),
    )


@pytest.mark.parametrize(
    ("build", "field", "limit", "text"),
    [
        (
            lambda: Buttons("Pick", []),
            "buttons",
            1,
            "Buttons.buttons: at least 1 reply button, got 0",
        ),
        (
            lambda: List("Body", "Menu", []),
            "sections",
            1,
            "List.sections: at least 1 section, got 0",
        ),
        (lambda: Section("A", []), "rows", 1, "Section.rows: at least 1 row, got 0"),
        (lambda: Contacts([]), "contacts", 1, "Contacts.contacts: at least 1 contact card, got 0"),
        (lambda: Header([]), "parameters", 1, "Header.parameters: at least 1 parameter, got 0"),
        (
            lambda: Body([]),
            "parameters",
            1,
            "Body.parameters: at least 1 parameter, got 0 (leave the body out instead)",
        ),
    ],
)
def test_empty_sequences_are_refused(
    build: Callable[[], object], field: str, limit: int, text: str
) -> None:
    raises(build, field, limit, text)


@pytest.mark.parametrize(
    ("build", "field", "limit", "text"),
    [
        (lambda: Text(""), "body", 4096, "Text.body: must not be empty (1 to 4096 characters)"),
        (lambda: Button("", "T"), "id", 256, "Button.id: must not be empty (1 to 256 characters)"),
        (
            lambda: Button("b", ""),
            "title",
            20,
            "Button.title: must not be empty (1 to 20 characters)",
        ),
        (
            lambda: Buttons("", [YES]),
            "body",
            1024,
            "Buttons.body: must not be empty (1 to 1024 characters)",
        ),
        (
            lambda: Buttons("B", [YES], header=""),
            "header",
            60,
            "Buttons.header: must not be empty (1 to 60 characters)",
        ),
        (
            lambda: Buttons("B", [YES], footer=""),
            "footer",
            60,
            "Buttons.footer: must not be empty (1 to 60 characters)",
        ),
        (lambda: Row("", "T"), "id", 200, "Row.id: must not be empty (1 to 200 characters)"),
        (lambda: Row("r", ""), "title", 24, "Row.title: must not be empty (1 to 24 characters)"),
        (
            lambda: Row("r", "T", ""),
            "description",
            72,
            "Row.description: must not be empty (1 to 72 characters)",
        ),
        (
            lambda: Section("", [Row("r", "T")]),
            "title",
            24,
            "Section.title: must not be empty (1 to 24 characters)",
        ),
        (
            lambda: List("B", "", [ONE_SECTION]),
            "button",
            20,
            "List.button: must not be empty (1 to 20 characters)",
        ),
        (
            lambda: List("", "Menu", [ONE_SECTION]),
            "body",
            4096,
            "List.body: must not be empty (1 to 4096 characters)",
        ),
        (lambda: TextParam(""), "text", None, "TextParam.text: must not be empty"),
        (lambda: Payload(""), "payload", None, "Payload.payload: must not be empty"),
        (
            lambda: DateTime(""),
            "fallback_value",
            None,
            "DateTime.fallback_value: must not be empty",
        ),
        (lambda: Template("t", ""), "language", None, "Template.language: must not be empty"),
        (
            lambda: Template("", "en"),
            "name",
            512,
            "Template.name: must not be empty (1 to 512 characters)",
        ),
    ],
)
def test_empty_text_is_refused_where_meta_requires_text(
    build: Callable[[], object], field: str, limit: int | None, text: str
) -> None:
    raises(build, field, limit, text)


@pytest.mark.parametrize("bad_id", ["yes ", " yes", "yes\n", "\tyes"])
def test_a_button_id_may_not_start_or_end_with_spaces(bad_id: str) -> None:
    text = f"Button.id: no leading or trailing spaces, got {bad_id!r}"
    raises(lambda: Button(bad_id, "Yes"), "id", None, text)


def test_a_button_id_may_contain_inner_spaces() -> None:
    assert Button("yes please", "Yes").id == "yes please"


def test_reply_button_ids_are_unique() -> None:
    text = "Buttons.buttons[2].id: duplicate id 'yes' (also at buttons[0].id)"
    build = lambda: Buttons("Sure?", [YES, Button("no", "No"), Button("yes", "Yes!")])  # noqa: E731
    raises(build, "buttons[2].id", None, text)


def test_row_ids_are_unique_across_the_whole_list() -> None:
    sections = [
        Section("Pizza", [Row("p1", "Margherita")]),
        Section("Drinks", [Row("d1", "Cola"), Row("p1", "Beer")]),
    ]
    text = "List.sections[1].rows[1].id: duplicate row id 'p1' (also at sections[0].rows[0].id)"
    raises(
        lambda: List("Order", "Menu", sections),
        "sections[1].rows[1].id",
        None,
        text,
    )


def test_section_titles_are_required_once_a_list_has_two_sections() -> None:
    assert List("Order", "Menu", [Section(None, [Row("a", "A")])]).sections[0].title is None
    sections = [Section("Pizza", [Row("a", "A")]), Section(None, [Row("b", "B")])]
    text = "List.sections[1].title: required when a list has more than one section"
    raises(lambda: List("Order", "Menu", sections), "sections[1].title", None, text)


@pytest.mark.parametrize(
    ("build", "field", "text"),
    [
        (
            lambda: Buttons("B", loose([("yes", "Yes")])),
            "buttons[0]",
            "Buttons.buttons[0]: expected Button, got tuple",
        ),
        (
            lambda: Buttons("B", loose("yes")),
            "buttons",
            "Buttons.buttons: expected a sequence, got str",
        ),
        (
            lambda: List("B", "Menu", loose([Row("r", "R")])),
            "sections[0]",
            "List.sections[0]: expected Section, got Row",
        ),
        (
            lambda: Section("S", loose([{"id": "r"}])),
            "rows[0]",
            "Section.rows[0]: expected Row, got dict",
        ),
        (lambda: Text(loose(42)), "body", "Text.body: expected a string, got int"),
        (
            lambda: Text("hi", preview_url=loose("yes")),
            "preview_url",
            "Text.preview_url: expected a boolean, got str",
        ),
    ],
)
def test_wrong_types_are_named(build: Callable[[], object], field: str, text: str) -> None:
    with pytest.raises(MessageError) as info:
        build()
    assert (str(info.value), info.value.field) == (text, field)


def test_sequences_are_stored_as_tuples_and_builders_are_frozen_values() -> None:
    given = [YES, Button("no", "No")]
    buttons = Buttons("Sure?", given)
    given.append(Button("maybe", "Maybe"))
    assert buttons.buttons == (YES, Button("no", "No"))
    assert buttons == Buttons("Sure?", (YES, Button("no", "No")))
    assert hash(buttons) == hash(Buttons("Sure?", (YES, Button("no", "No"))))
    assert isinstance(Section("S", [Row("r", "R")]).rows, tuple)
    assert isinstance(List("B", "M", [ONE_SECTION]).sections, tuple)
    assert isinstance(Template.of("t", "en", body=["x"]).components, tuple)
    assert isinstance(Body([TextParam("x")]).parameters, tuple)
    with pytest.raises(dataclasses.FrozenInstanceError):
        buttons.body = "changed"  # type: ignore[misc]
    assert not hasattr(buttons, "__dict__")


def test_ids_are_listed_in_order() -> None:
    assert Buttons("Sure?", [YES, Button("no", "No")]).button_ids == ("yes", "no")
    menu = List(
        "Order",
        "Menu",
        [Section("A", [Row("a1", "A1"), Row("a2", "A2")]), Section("B", [Row("b1", "B1")])],
    )
    assert menu.row_ids == ("a1", "a2", "b1")


# ---------------------------------------------------------------------------------------------
# payload shapes, compared with Meta's


def test_text_payload() -> None:
    assert Text("Hola").payload() == {"body": "Hola", "preview_url": False}
    assert Text("See https://x.io", preview_url=True).payload() == {
        "body": "See https://x.io",
        "preview_url": True,
    }
    assert Text.type == "text"


def test_buttons_payload() -> None:
    message = Buttons(
        "¿Confirmás el turno?",
        [Button("confirm_yes", "Sí, confirmo"), Button("no", "No")],
        "Turno",
        "Clínica",
    )
    assert message.type == "interactive"
    assert message.payload() == {
        "type": "button",
        "header": {"type": "text", "text": "Turno"},
        "body": {"text": "¿Confirmás el turno?"},
        "footer": {"text": "Clínica"},
        "action": {
            "buttons": [
                {"type": "reply", "reply": {"id": "confirm_yes", "title": "Sí, confirmo"}},
                {"type": "reply", "reply": {"id": "no", "title": "No"}},
            ]
        },
    }


def test_buttons_payload_leaves_out_a_missing_header_and_footer() -> None:
    assert Buttons("Sure?", [YES]).payload() == {
        "type": "button",
        "body": {"text": "Sure?"},
        "action": {"buttons": [{"type": "reply", "reply": {"id": "yes", "title": "Yes"}}]},
    }


def test_list_payload() -> None:
    message = List(
        "What would you like?",
        "See menu",
        [
            Section(
                "Pizza",
                [
                    Row("margherita", "Margherita", "Tomato and basil"),
                    Row("fugazzeta", "Fugazzeta"),
                ],
            ),
            Section("Drinks", [Row("cola", "Cola")]),
        ],
        header="Menu",
        footer="Open until 23:00",
    )
    assert message.type == "interactive"
    assert message.payload() == {
        "type": "list",
        "header": {"type": "text", "text": "Menu"},
        "body": {"text": "What would you like?"},
        "footer": {"text": "Open until 23:00"},
        "action": {
            "button": "See menu",
            "sections": [
                {
                    "title": "Pizza",
                    "rows": [
                        {
                            "id": "margherita",
                            "title": "Margherita",
                            "description": "Tomato and basil",
                        },
                        {"id": "fugazzeta", "title": "Fugazzeta"},
                    ],
                },
                {"title": "Drinks", "rows": [{"id": "cola", "title": "Cola"}]},
            ],
        },
    }


def test_a_single_untitled_section_has_no_title_key() -> None:
    assert List("Pick", "Menu", [ONE_SECTION]).payload() == {
        "type": "list",
        "body": {"text": "Pick"},
        "action": {"button": "Menu", "sections": [{"rows": [{"id": "r0", "title": "Row"}]}]},
    }


FULL_TEMPLATE = Template(
    "order_update",
    "es_AR",
    [
        Header([ImageParam(link=URL)]),
        Body(
            [
                TextParam("Juan"),
                Currency("US$12.50", "USD", 12500),
                DateTime("19 de mayo de 2026"),
            ]
        ),
        TemplateButton("quick_reply", 0, [Payload("track")]),
        TemplateButton("quick_reply", 1, [Payload("cancel")]),
        TemplateButton("url", 2, [TextParam("orders/123")]),
    ],
)


def test_template_payload_with_every_body_parameter_type_and_buttons() -> None:
    assert FULL_TEMPLATE.type == "template"
    assert FULL_TEMPLATE.payload() == {
        "name": "order_update",
        "language": {"code": "es_AR"},
        "components": [
            {"type": "header", "parameters": [{"type": "image", "image": {"link": URL}}]},
            {
                "type": "body",
                "parameters": [
                    {"type": "text", "text": "Juan"},
                    {
                        "type": "currency",
                        "currency": {
                            "fallback_value": "US$12.50",
                            "code": "USD",
                            "amount_1000": 12500,
                        },
                    },
                    {"type": "date_time", "date_time": {"fallback_value": "19 de mayo de 2026"}},
                ],
            },
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "0",
                "parameters": [{"type": "payload", "payload": "track"}],
            },
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": "1",
                "parameters": [{"type": "payload", "payload": "cancel"}],
            },
            {
                "type": "button",
                "sub_type": "url",
                "index": "2",
                "parameters": [{"type": "text", "text": "orders/123"}],
            },
        ],
    }


@pytest.mark.parametrize(
    ("parameter", "expected"),
    [
        (ImageParam(id="1234"), {"type": "image", "image": {"id": "1234"}}),
        (
            VideoParam(link="https://cdn.example.com/a.mp4"),
            {"type": "video", "video": {"link": "https://cdn.example.com/a.mp4"}},
        ),
        (VideoParam(id="99"), {"type": "video", "video": {"id": "99"}}),
        (
            DocumentParam(link="https://cdn.example.com/i.pdf", filename="invoice.pdf"),
            {
                "type": "document",
                "document": {"link": "https://cdn.example.com/i.pdf", "filename": "invoice.pdf"},
            },
        ),
        (DocumentParam(id="55"), {"type": "document", "document": {"id": "55"}}),
        (TextParam("Juan"), {"type": "text", "text": "Juan"}),
        (
            Currency("€1", "EUR", 1000),
            {
                "type": "currency",
                "currency": {"fallback_value": "€1", "code": "EUR", "amount_1000": 1000},
            },
        ),
        (DateTime("tomorrow"), {"type": "date_time", "date_time": {"fallback_value": "tomorrow"}}),
    ],
)
def test_header_parameter_payloads(parameter: object, expected: JSONObject) -> None:
    template = Template("receipt", "en_US", [Header([parameter])])  # type: ignore[list-item]
    assert template.payload() == {
        "name": "receipt",
        "language": {"code": "en_US"},
        "components": [{"type": "header", "parameters": [expected]}],
    }


def test_a_template_without_components_sends_none() -> None:
    assert Template("hello_world", "en_US").payload() == {
        "name": "hello_world",
        "language": {"code": "en_US"},
    }


def test_template_of_fills_body_header_and_quick_replies_in_order() -> None:
    template = Template.of(
        "appointment_reminder",
        "es",
        body=["Juan", DateTime("mañana 10:00"), "Dr. Gómez"],
        header=["Recordatorio"],
        quick_replies=["confirm", "reschedule"],
    )
    assert template == Template(
        "appointment_reminder",
        "es",
        [
            Header([TextParam("Recordatorio")]),
            Body([TextParam("Juan"), DateTime("mañana 10:00"), TextParam("Dr. Gómez")]),
            TemplateButton("quick_reply", 0, [Payload("confirm")]),
            TemplateButton("quick_reply", 1, [Payload("reschedule")]),
        ],
    )
    assert template.body_parameters == (
        TextParam("Juan"),
        DateTime("mañana 10:00"),
        TextParam("Dr. Gómez"),
    )
    assert template.quick_reply_payloads == ("confirm", "reschedule")


def test_template_of_with_nothing_but_a_name() -> None:
    template = Template.of("hello_world", "en_US")
    assert template.components == ()
    assert template.body_parameters == ()
    assert template.quick_reply_payloads == ()


def test_quick_reply_payloads_follow_the_button_index_not_the_component_order() -> None:
    template = Template(
        "t",
        "en",
        [
            TemplateButton("quick_reply", 2, [Payload("third")]),
            TemplateButton("url", 1, [TextParam("x")]),
            TemplateButton("quick_reply", 0, [Payload("first")]),
        ],
    )
    assert template.quick_reply_payloads == ("first", "third")


def test_template_of_refuses_a_bare_string_for_a_sequence() -> None:
    text = "Template.body: expected a sequence of values, got the string 'Juan'"
    raises(lambda: Template.of("t", "en", body="Juan"), "body", None, text)


@pytest.mark.parametrize(
    ("build", "field", "limit", "text"),
    [
        (
            lambda: Template("Order Update", "en"),
            "name",
            None,
            "Template.name: only lowercase letters, digits and underscores, got 'Order Update'",
        ),
        (
            lambda: Template("t", "en US"),
            "language",
            None,
            "Template.language: expected a code such as 'en' or 'es_AR', got 'en US'",
        ),
        (
            lambda: Template("t", "en", [Body([TextParam("a")]), Body([TextParam("b")])]),
            "components[1]",
            1,
            "Template.components[1]: at most one body component,"
            " got another (first at components[0])",
        ),
        (
            lambda: Template(
                "t",
                "en",
                [Header([TextParam("a")]), Body([TextParam("b")]), Header([TextParam("c")])],
            ),
            "components[2]",
            1,
            "Template.components[2]: at most one header component,"
            " got another (first at components[0])",
        ),
        (
            lambda: Template(
                "t",
                "en",
                [
                    TemplateButton("quick_reply", 1, [Payload("a")]),
                    TemplateButton("quick_reply", 1, [Payload("b")]),
                ],
            ),
            "components[1].index",
            None,
            "Template.components[1].index: duplicate button index '1'"
            " (also at components[0].index)",
        ),
        (
            lambda: Template("t", "en", loose([TextParam("a")])),
            "components[0]",
            None,
            "Template.components[0]: expected Header or Body or TemplateButton, got TextParam",
        ),
        (
            lambda: TemplateButton("quick_reply", 0, [TextParam("yes")]),
            "parameters[0]",
            None,
            "TemplateButton.parameters[0]: expected Payload, got TextParam",
        ),
        (
            lambda: TemplateButton("quick_reply", 0, [Payload("a"), Payload("b")]),
            "parameters",
            1,
            "TemplateButton.parameters: at most 1 Payload parameter, got 2",
        ),
        (
            lambda: TemplateButton("quick_reply", 0, []),
            "parameters",
            1,
            "TemplateButton.parameters: at least 1 Payload parameter, got 0",
        ),
        (
            lambda: TemplateButton("QUICK REPLY", 0, [Payload("a")]),
            "sub_type",
            None,
            "TemplateButton.sub_type: expected a lowercase name like 'quick_reply' or 'url',"
            " got 'QUICK REPLY'",
        ),
        (
            lambda: TemplateButton("quick_reply", loose("0"), [Payload("a")]),
            "index",
            None,
            "TemplateButton.index: expected an integer, got str",
        ),
        (
            lambda: Body([ImageParam(link=URL)]),
            "parameters[0]",
            None,
            "Body.parameters[0]: expected TextParam or Currency or DateTime, got ImageParam",
        ),
        (
            lambda: Header([Payload("p")]),
            "parameters[0]",
            None,
            "Header.parameters[0]: expected TextParam or Currency or DateTime or ImageParam"
            " or VideoParam or DocumentParam, got Payload",
        ),
        (
            lambda: Currency("$1", "usd", 1000),
            "code",
            None,
            "Currency.code: expected an ISO 4217 code such as 'USD', got 'usd'",
        ),
        (
            lambda: Currency("$1", "USDT", 1000),
            "code",
            3,
            "Currency.code: at most 3 characters, got 4 ('USDT')",
        ),
        (
            lambda: Currency("$1", "USD", loose(1.5)),
            "amount_1000",
            None,
            "Currency.amount_1000: expected an integer, got float",
        ),
        (
            lambda: Currency("$1", "USD", loose(True)),
            "amount_1000",
            None,
            "Currency.amount_1000: expected an integer, got bool",
        ),
    ],
)
def test_template_rules(
    build: Callable[[], object], field: str, limit: int | None, text: str
) -> None:
    raises(build, field, limit, text)


# ---------------------------------------------------------------------------------------------
# media, location, contacts


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (Image(link=URL, caption="Our menu"), {"link": URL, "caption": "Our menu"}),
        (Image(id="1013859600285441"), {"id": "1013859600285441"}),
        (
            Video(link="https://cdn.example.com/v.mp4", caption="Tour"),
            {"link": "https://cdn.example.com/v.mp4", "caption": "Tour"},
        ),
        (Audio(id="888"), {"id": "888"}),
        (Audio(link="https://cdn.example.com/a.ogg"), {"link": "https://cdn.example.com/a.ogg"}),
        (
            Document(
                link="https://cdn.example.com/i.pdf", caption="Your invoice", filename="invoice.pdf"
            ),
            {
                "link": "https://cdn.example.com/i.pdf",
                "caption": "Your invoice",
                "filename": "invoice.pdf",
            },
        ),
        (Document(id="42", filename="terms.pdf"), {"id": "42", "filename": "terms.pdf"}),
        (Sticker(id="st1"), {"id": "st1"}),
        (
            Sticker(link="https://cdn.example.com/s.webp"),
            {"link": "https://cdn.example.com/s.webp"},
        ),
    ],
)
def test_media_payloads(message: Message, expected: JSONObject) -> None:
    assert message.payload() == expected


@pytest.mark.parametrize(
    "cls", [Image, Video, Audio, Document, Sticker, ImageParam, VideoParam, DocumentParam]
)
def test_media_needs_exactly_one_of_link_or_id(cls: type) -> None:
    name = cls.__name__
    raises(
        lambda: cls(),
        "link",
        None,
        f"{name}.link: give exactly one of link or id, got neither",
    )
    both = f"{name}.link: give exactly one of link or id, got both"
    raises(lambda: cls(link=URL, id="1"), "link", None, both)
    raises(lambda: cls(id=""), "id", None, f"{name}.id: must not be empty")
    text = f"{name}.link: expected an http(s) URL, got 'ftp://x/y.png'"
    raises(lambda: cls(link="ftp://x/y.png"), "link", None, text)


def test_media_types() -> None:
    kinds: dict[Any, str] = {
        Image: "image",
        Video: "video",
        Audio: "audio",
        Document: "document",
        Sticker: "sticker",
    }
    assert {cls: cls.type for cls in kinds} == kinds


def test_location_payload() -> None:
    pin = Location(-34.6037, -58.3816, name="Obelisco", address="Av. 9 de Julio s/n, CABA")
    assert pin.type == "location"
    assert pin.payload() == {
        "latitude": -34.6037,
        "longitude": -58.3816,
        "name": "Obelisco",
        "address": "Av. 9 de Julio s/n, CABA",
    }
    assert Location(0, 0).payload() == {"latitude": 0.0, "longitude": 0.0}


@pytest.mark.parametrize(("latitude", "longitude"), [(90, 180), (-90, -180), (89.999999, -179.5)])
def test_coordinates_at_their_limits_pass(latitude: float, longitude: float) -> None:
    assert Location(latitude, longitude).latitude == latitude


@pytest.mark.parametrize(
    ("latitude", "longitude", "field", "limit", "text"),
    [
        (90.000001, 0, "latitude", 90, "Location.latitude: -90 to 90, got 90.000001"),
        (-91, 0, "latitude", 90, "Location.latitude: -90 to 90, got -91"),
        (0, 180.5, "longitude", 180, "Location.longitude: -180 to 180, got 180.5"),
        (0, -181, "longitude", 180, "Location.longitude: -180 to 180, got -181"),
        (math.nan, 0, "latitude", 90, "Location.latitude: -90 to 90, got nan"),
        (0, math.inf, "longitude", 180, "Location.longitude: -180 to 180, got inf"),
        (True, 0, "latitude", 90, "Location.latitude: expected a number, got bool"),
        ("12", 0, "latitude", 90, "Location.latitude: expected a number, got str"),
    ],
)
def test_coordinates_out_of_range_fail(
    latitude: float, longitude: float, field: str, limit: int, text: str
) -> None:
    raises(lambda: Location(latitude, longitude), field, limit, text)


def test_contacts_payload_and_wire_body() -> None:
    cards: list[JSONObject] = [
        {
            "name": {
                "formatted_name": "Barbara Johnson",
                "first_name": "Barbara",
                "last_name": "Johnson",
            },
            "phones": [{"phone": "+1 (940) 555-1234", "type": "WORK", "wa_id": "19405551234"}],
            "emails": [{"email": "bjohnson@example.com", "type": "WORK"}],
            "org": {"company": "Lucky Shrub", "title": "Manager"},
        }
    ]
    contacts = Contacts(cards)
    assert contacts.type == "contacts"
    assert contacts.payload() == {"contacts": cards}
    body = request_body(contacts, to="5491140123456", phone_number_id="555123456789")
    assert body == {
        "phone_number_id": "555123456789",
        "to": "5491140123456",
        "type": "contacts",
        "contacts": cards,
    }


def test_contacts_are_copied_in_and_out() -> None:
    given: Any = card("Ana Pérez")
    contacts = Contacts([given])
    given["name"]["formatted_name"] = "changed"
    sent: Any = contacts.payload()
    sent["contacts"][0]["name"]["formatted_name"] = "changed too"
    assert contacts.contacts[0]["name"] == {"formatted_name": "Ana Pérez", "first_name": "Ana"}


@pytest.mark.parametrize(
    ("cards", "field", "text"),
    [
        (
            [{"phones": []}],
            "contacts[0].name",
            "Contacts.contacts[0].name: expected an object, got null",
        ),
        (
            [card(), {"name": {"first_name": "Bo"}}],
            "contacts[1].name.formatted_name",
            "Contacts.contacts[1].name.formatted_name: expected a string, got null",
        ),
        (
            [{"name": {"formatted_name": ""}}],
            "contacts[0].name.formatted_name",
            "Contacts.contacts[0].name.formatted_name: must not be empty",
        ),
        (["Ana"], "contacts[0]", "Contacts.contacts[0]: expected dict, got str"),
    ],
)
def test_every_contact_card_needs_a_formatted_name(
    cards: list[JSONObject], field: str, text: str
) -> None:
    raises(lambda: Contacts(cards), field, None, text)


# ---------------------------------------------------------------------------------------------
# request_body

SAMPLES: list[Message] = [
    Text("Hola, ¿en qué te ayudo?"),
    Text("https://example.com", preview_url=True),
    Buttons(
        "¿Confirmás?",
        [Button("confirm_yes", "Sí, confirmo"), Button("confirm_no", "No")],
        "Turno",
        "Clínica",
    ),
    Buttons("Sure?", [YES]),
    List(
        "What would you like?",
        "See menu",
        [
            Section("Pizza", [Row("m", "Margherita", "Tomato, basil"), Row("f", "Fugazzeta")]),
            Section("Drinks", [Row("c", "Cola")]),
        ],
        header="Menu",
        footer="Open late",
    ),
    List("Pick", "Menu", [ONE_SECTION]),
    FULL_TEMPLATE,
    Template(
        "media_headers",
        "en",
        [
            Header([DocumentParam(id="55", filename="invoice.pdf")]),
            Body([TextParam("x")]),
            TemplateButton("url", 0, [TextParam("a")]),
        ],
    ),
    Template("video_header", "pt_BR", [Header([VideoParam(link="https://cdn.example.com/v.mp4")])]),
    Template("plain_header", "en", [Header([Currency("$5", "USD", 5000)])]),
    Template("hello_world", "en_US"),
    Template.of("reminder", "es", body=["Juan"], quick_replies=["ok", "later"]),
    Image(link=URL, caption="Menu"),
    Image(id="1013859600285441"),
    Video(id="v1", caption="Tour"),
    Audio(link="https://cdn.example.com/a.ogg"),
    Document(link="https://cdn.example.com/i.pdf", caption="Invoice", filename="invoice.pdf"),
    Sticker(id="st1"),
    Location(-34.6037, -58.3816, "Obelisco", "Av. 9 de Julio s/n"),
    Location(10, 20),
    Contacts([card("Ana Pérez"), card("Bo Li")]),
]


def test_message_types_are_the_ten_gosendapi_types() -> None:
    expected = {
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
    assert expected == MESSAGE_TYPES
    assert {message.type for message in SAMPLES} == MESSAGE_TYPES


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_every_builder_is_a_message(message: Message) -> None:
    assert isinstance(message, Message)


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_request_body_names_the_type_and_nests_the_payload_under_it(message: Message) -> None:
    body = request_body(message, to="5491140123456", phone_number_id="555123456789")
    assert set(body) == {"phone_number_id", "to", "type", message.type}
    assert body["type"] == message.type
    assert (body["phone_number_id"], body["to"]) == ("555123456789", "5491140123456")
    expected = message.payload()["contacts"] if message.type == "contacts" else message.payload()
    assert body[message.type] == expected


def test_request_body_for_a_text() -> None:
    assert request_body(Text("Hi"), to="15550001111", phone_number_id="101") == {
        "phone_number_id": "101",
        "to": "15550001111",
        "type": "text",
        "text": {"body": "Hi", "preview_url": False},
    }


@pytest.mark.parametrize(
    "to",
    [
        "+5491140123456",
        "549 11 4012 3456",
        "549-11-4012-3456",
        "(549)1140123456",
        "",
        "123456",
        "1" * 16,
        "0541140123456",
    ],
)
def test_request_body_refuses_a_recipient_that_is_not_e164_digits(to: str) -> None:
    text = (
        "request_body.to: expected E.164 digits without '+', spaces or dashes (5491140123456),"
        f" got {to!r}"
    )
    raises(
        lambda: request_body(Text("Hi"), to=to, phone_number_id="101"),
        "to",
        None,
        text,
    )


@pytest.mark.parametrize("phone_number_id", ["", "+15550001111", "abc", "101 "])
def test_request_body_refuses_a_phone_number_id_that_is_not_numeric(phone_number_id: str) -> None:
    text = f"request_body.phone_number_id: expected Meta's numeric id, got {phone_number_id!r}"
    build = lambda: request_body(Text("Hi"), to="15550001111", phone_number_id=phone_number_id)  # noqa: E731
    raises(build, "phone_number_id", None, text)


# ---------------------------------------------------------------------------------------------
# message_from_payload: the inverse of (type, payload())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_payload(message: Message) -> None:
    assert message_from_payload(message.type, message.payload()) == message


@pytest.mark.parametrize("message", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip_through_stored_json_and_the_request_body(message: Message) -> None:
    stored = json.loads(json.dumps(message.payload()))
    assert message_from_payload(message.type, stored) == message
    body = json.loads(json.dumps(request_body(message, to="15550001111", phone_number_id="101")))
    assert message_from_payload(body["type"], body[body["type"]]) == message


def test_received_media_bodies_are_read_tolerantly() -> None:
    received: JSONObject = {
        "id": "1013859600285441",
        "mime_type": "image/jpeg",
        "sha256": "abc=",
        "caption": "look",
    }
    assert message_from_payload("image", received) == Image(id="1013859600285441", caption="look")
    assert message_from_payload("text", {"body": "hola"}) == Text("hola")
    location: JSONObject = {"latitude": "-34.6", "longitude": -58.38, "name": None}
    assert message_from_payload("location", location) == Location(-34.6, -58.38)


def test_template_payloads_are_read_tolerantly() -> None:
    payload: Any = {
        "name": "t",
        "language": "en",
        "components": [
            {"type": "BODY", "parameters": [{"type": "text", "text": "a"}]},
            {
                "type": "button",
                "sub_type": "quick_reply",
                "index": 1,
                "parameters": [{"type": "payload", "payload": "p"}],
            },
        ],
    }
    assert message_from_payload("template", payload) == Template(
        "t", "en", [Body([TextParam("a")]), TemplateButton("quick_reply", 1, [Payload("p")])]
    )


def test_a_limit_broken_inside_a_payload_names_the_builder_path() -> None:
    payload: Any = List(
        "Pick", "Menu", [Section("A", [Row("a", "A")]), Section("B", [Row("b", "B")])]
    ).payload()
    payload["action"]["sections"][1]["rows"][0]["title"] = "t" * 25
    text = f"List.sections[1].rows[0].title: at most 24 characters, got 25 ({'t' * 25!r})"
    raises(
        lambda: message_from_payload("interactive", payload),
        "sections[1].rows[0].title",
        24,
        text,
    )


def test_a_limit_broken_by_a_stored_body_is_caught_again() -> None:
    payload: Any = Buttons("Sure?", [YES]).payload()
    payload["action"]["buttons"] = [
        {"type": "reply", "reply": {"id": f"b{i}", "title": "B"}} for i in range(4)
    ]
    text = "Buttons.buttons: at most 3 reply buttons, got 4"
    raises(lambda: message_from_payload("interactive", payload), "buttons", 3, text)
    payload["action"]["buttons"] = [{"type": "reply", "reply": {"id": "yes ", "title": "B"}}]
    text = "Buttons.buttons[0].id: no leading or trailing spaces, got 'yes '"
    raises(
        lambda: message_from_payload("interactive", payload),
        "buttons[0].id",
        None,
        text,
    )


def test_a_template_parameter_error_names_its_component() -> None:
    payload: Any = {
        "name": "t",
        "language": {"code": "en"},
        "components": [
            {
                "type": "body",
                "parameters": [{"type": "text", "text": "a"}, {"type": "text", "text": ""}],
            }
        ],
    }
    text = "Template.components[0].parameters[1].text: must not be empty"
    raises(
        lambda: message_from_payload("template", payload),
        "components[0].parameters[1].text",
        None,
        text,
    )
    payload["components"] = [
        {
            "type": "button",
            "sub_type": "quick_reply",
            "index": "10",
            "parameters": [{"type": "payload", "payload": "p"}],
        }
    ]
    text = "Template.components[0].index: 0 to 9 (a template has at most 10 buttons), got 10"
    raises(
        lambda: message_from_payload("template", payload),
        "components[0].index",
        9,
        text,
    )


@pytest.mark.parametrize(
    ("type_", "payload", "field", "text"),
    [
        (
            "reaction",
            {"emoji": "👍"},
            "type",
            "message_from_payload.type: unknown message type 'reaction' (expected one of audio,"
            " contacts, document, image, interactive, location, sticker, template, text, video)",
        ),
        ("text", ["hola"], "payload", "message_from_payload.payload: expected an object, got list"),
        ("text", {}, "body", "Text.body: is required"),
        ("text", {"body": 7}, "body", "Text.body: expected a string, got int"),
        (
            "text",
            {"body": "x", "preview_url": "yes"},
            "preview_url",
            "Text.preview_url: expected a boolean, got str",
        ),
        (
            "interactive",
            {"type": "cta_url"},
            "type",
            "interactive.type: only 'button' and 'list' can be built, got 'cta_url'",
        ),
        (
            "interactive",
            {"type": "button", "body": {"text": "b"}},
            "action",
            "Buttons.action: is required",
        ),
        (
            "interactive",
            {"type": "button", "body": {"text": "b"}, "action": {"buttons": [{"id": "x"}]}},
            "action.buttons[0].reply",
            "Buttons.action.buttons[0].reply: is required",
        ),
        (
            "interactive",
            {
                "type": "button",
                "header": {"type": "image", "image": {"id": "1"}},
                "body": {"text": "b"},
                "action": {"buttons": [{"type": "reply", "reply": {"id": "a", "title": "A"}}]},
            },
            "header.type",
            "Buttons.header.type: only text headers are supported, got 'image'",
        ),
        (
            "interactive",
            {
                "type": "list",
                "body": {"text": "b"},
                "action": {"button": "M", "sections": [{"rows": "r"}]},
            },
            "action.sections[0].rows",
            "List.action.sections[0].rows: expected a list, got str",
        ),
        ("template", {"name": "t"}, "language", "Template.language: is required"),
        (
            "template",
            {"name": "t", "language": {"code": "en"}, "components": [{"type": "footer"}]},
            "components[0].type",
            "Template.components[0].type: expected 'header', 'body' or 'button', got 'footer'",
        ),
        (
            "template",
            {
                "name": "t",
                "language": {"code": "en"},
                "components": [
                    {"type": "body", "parameters": [{"type": "coupon_code", "coupon_code": "X"}]}
                ],
            },
            "components[0].parameters[0].type",
            "Template.components[0].parameters[0].type: expected text, currency, "
            "date_time, image, video, document or payload, got 'coupon_code'",
        ),
        (
            "template",
            {
                "name": "t",
                "language": {"code": "en"},
                "components": [
                    {
                        "type": "body",
                        "parameters": [
                            {
                                "type": "currency",
                                "currency": {
                                    "fallback_value": "$1",
                                    "code": "USD",
                                    "amount_1000": "1000",
                                },
                            }
                        ],
                    }
                ],
            },
            "components[0].parameters[0].currency.amount_1000",
            "Template.components[0].parameters[0].currency.amount_1000:"
            " expected an integer, got str",
        ),
        (
            "template",
            {
                "name": "t",
                "language": {"code": "en"},
                "components": [
                    {"type": "button", "sub_type": "quick_reply", "index": "x", "parameters": []}
                ],
            },
            "components[0].index",
            "Template.components[0].index: expected an integer, got str",
        ),
        (
            "image",
            {"caption": "no source"},
            "link",
            "Image.link: give exactly one of link or id, got neither",
        ),
        ("location", {"latitude": 1}, "longitude", "Location.longitude: is required"),
        (
            "location",
            {"latitude": "north", "longitude": 1},
            "latitude",
            "Location.latitude: expected a number, got 'north'",
        ),
        ("contacts", {"cards": []}, "contacts", "Contacts.contacts: is required"),
    ],
)
def test_bad_payloads_are_refused_with_their_path(
    type_: str, payload: JSONObject, field: str, text: str
) -> None:
    with pytest.raises(MessageError) as info:
        message_from_payload(type_, payload)
    assert (str(info.value), info.value.field) == (text, field)
