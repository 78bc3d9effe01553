"""An approved template as a conversation declares it: its counts, and the wording Meta approved.

A bot sends a template by name with parameters; the wording lives at Meta. Declaring it here
(``TemplateSpec(text="Hola {{1}}, ...", buttons=["Sí, confirmo"])``) lets `botkit check`
compare what the bot sends with what was approved, and lets the simulators show the message
as the user would read it, and tap its buttons by their texts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from botkit.exceptions import DefinitionError

BODY_MAX = 1024  # Meta's limit on a template's body text
HEADER_MAX = 60  # ... on a text header
BUTTON_TEXT_MAX = 25  # ... on a quick-reply button's text
BUTTONS_MAX = 10  # ... on a template's buttons
_PLACEHOLDER = re.compile(r"\{\{\s*(\d+)\s*\}\}")


@dataclass(frozen=True, slots=True)
class TemplateSpec:
    """An approved template: its body and quick-reply counts, and optionally its wording.

    `text` is the approved body with ``{{1}}``, ``{{2}}``... placeholders, `header` a text
    header (at most one placeholder) and `buttons` the quick-reply buttons' texts, in order.
    Counts left at 0 are taken from the wording; counts given must agree with it.
    """

    body: int = 0
    quick_replies: int = 0
    text: str | None = None
    header: str | None = None
    buttons: Sequence[str] = ()

    def __post_init__(self) -> None:
        _count("body", self.body)
        _count("quick_replies", self.quick_replies)
        buttons = self.buttons
        if isinstance(buttons, str) or not all(isinstance(b, str) for b in buttons):
            raise _error("buttons", f"expected a list of button texts, got {buttons!r}")
        object.__setattr__(self, "buttons", tuple(buttons))
        if self.text is not None:
            found = _placeholders("text", self.text, BODY_MAX)
            object.__setattr__(self, "body", _agree("body", self.body, found, "placeholders"))
        if self.header is not None and len(_placeholders("header", self.header, HEADER_MAX)) > 1:
            raise _error("header", "a header takes at most one placeholder, {{1}}")
        for i, button in enumerate(self.buttons):
            if not button.strip() or len(button) > BUTTON_TEXT_MAX:
                raise _error(
                    f"buttons[{i}]",
                    f"a button text has 1 to {BUTTON_TEXT_MAX} characters, got {button!r}",
                )
        if self.buttons:
            replies = _agree("quick_replies", self.quick_replies, self.buttons, "button texts")
            object.__setattr__(self, "quick_replies", replies)
        if self.quick_replies > BUTTONS_MAX:
            raise _error(
                "quick_replies",
                f"a template has at most {BUTTONS_MAX} buttons, got {self.quick_replies}",
            )

    @property
    def header_parameters(self) -> int | None:
        """How many parameters the declared text header takes (None: no header declared)."""
        return None if self.header is None else len(_PLACEHOLDER.findall(self.header))

    def render(self, body: Sequence[str], header: Sequence[str] = ()) -> tuple[str | None, str]:
        """The header and body as the user reads them, parameters in their placeholders.

        A parameter that was not given shows as its placeholder; without a declared `text`,
        the body is the parameters joined by " | ".
        """
        shown_header = None if self.header is None else _fill(self.header, header)
        if self.text is None:
            return shown_header, " | ".join(body)
        return shown_header, _fill(self.text, body)

    def button_text(self, index: int, payload: str) -> str:
        """The text of quick-reply button `index`; its payload when no texts were declared."""
        return self.buttons[index] if 0 <= index < len(self.buttons) else payload


def _fill(text: str, values: Sequence[str]) -> str:
    def value(match: re.Match[str]) -> str:
        n = int(match.group(1))
        return values[n - 1] if 1 <= n <= len(values) else match.group(0)

    return _PLACEHOLDER.sub(value, text)


def _placeholders(field: str, text: object, limit: int) -> list[int]:
    """The placeholders' numbers, which must run 1, 2, 3... as Meta requires."""
    if not isinstance(text, str) or not text.strip():
        raise _error(field, f"expected the approved wording as a non-empty string, got {text!r}")
    if len(text) > limit:
        raise _error(field, f"at most {limit} characters, got {len(text)}")
    numbers = [int(n) for n in _PLACEHOLDER.findall(text)]
    expected = list(range(1, len(numbers) + 1))
    if sorted(numbers) != expected:
        shown = ", ".join(f"{{{{{n}}}}}" for n in numbers)
        raise _error(
            field, f"expected placeholders numbered {{{{1}}}}, {{{{2}}}}... once each, got {shown}"
        )
    return numbers


def _agree(field: str, given: int, found: Sequence[object], what: str) -> int:
    if given and given != len(found):
        raise _error(
            field, f"{given} does not match the {len(found)} {what} declared; leave it out"
        )
    return len(found)


def _count(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _error(field, f"expected a count (0 or more), got {value!r}")


def _error(field: str, detail: str) -> DefinitionError:
    return DefinitionError(f"TemplateSpec({field}=...): {detail}")


__all__ = ["TemplateSpec"]
