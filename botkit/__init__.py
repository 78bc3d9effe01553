"""botkit: WhatsApp chatbots on GoSendAPI, from a signed webhook to per-user state machines and back out.

The names a bot author uses. `Simulator` and `SimulatorError` (test tooling, over the fake
provider) are imported on first use, so that `import botkit` loads neither.
"""

from __future__ import annotations

import importlib as _importlib
import typing as _typing

from botkit.config import Settings
from botkit.conversation.context import HOLD, Hold, WindowView
from botkit.conversation.dsl import Context, Conversation, State, User, on
from botkit.conversation.migration import Migration
from botkit.conversation.template import TemplateSpec
from botkit.exceptions import (
    BotkitError,
    ConfigError,
    DefinitionError,
    HandoffError,
    LaneBusyError,
    MediaError,
    MessageError,
    PayloadError,
    PermanentProviderError,
    ProviderError,
    RateLimitedError,
    RepairError,
    StoreError,
    TransientProviderError,
    TriggerError,
    WindowClosedError,
)
from botkit.runtime.bot import Bot
from botkit.runtime.ingest import Ingest
from botkit.runtime.runtime import Runtime
from botkit.runtime.workers import Workers
from botkit.tracing import Tracing
from botkit.wire.events import (
    ButtonTap,
    ContactsInput,
    InboundMessage,
    LocationInput,
    MediaInput,
    QuickReplyTap,
    RowPick,
    StatusUpdate,
    TextInput,
    UnsupportedInput,
)
from botkit.wire.handoff import HandoffMark
from botkit.wire.messages import (
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
)
from botkit.wire.timer import TimerEvent, TimerInput
from botkit.wire.trigger import TriggerEvent, TriggerInput
from botkit.wire.window import Window

__all__ = [
    "Audio",
    "Body",
    "Bot",
    "BotkitError",
    "Button",
    "ButtonTap",
    "Buttons",
    "ConfigError",
    "Contacts",
    "ContactsInput",
    "Context",
    "Conversation",
    "Currency",
    "DateTime",
    "DefinitionError",
    "Document",
    "DocumentParam",
    "HOLD",
    "HandoffError",
    "HandoffMark",
    "Header",
    "Hold",
    "Image",
    "ImageParam",
    "InboundMessage",
    "Ingest",
    "LaneBusyError",
    "List",
    "Location",
    "LocationInput",
    "MediaError",
    "MediaInput",
    "MessageError",
    "Migration",
    "Payload",
    "PayloadError",
    "PermanentProviderError",
    "ProviderError",
    "QuickReplyTap",
    "RateLimitedError",
    "RepairError",
    "Row",
    "RowPick",
    "Runtime",
    "Section",
    "Settings",
    "Simulator",
    "SimulatorError",
    "State",
    "StatusUpdate",
    "Sticker",
    "StoreError",
    "Template",
    "TemplateButton",
    "TemplateSpec",
    "Text",
    "TextInput",
    "TextParam",
    "TimerEvent",
    "TimerInput",
    "Tracing",
    "TransientProviderError",
    "TriggerError",
    "TriggerEvent",
    "TriggerInput",
    "UnsupportedInput",
    "User",
    "Video",
    "VideoParam",
    "Window",
    "WindowClosedError",
    "WindowView",
    "Workers",
    "on",
]


_LAZY = {"Simulator": "botkit.tools.simulator", "SimulatorError": "botkit.tools.simulator"}

if _typing.TYPE_CHECKING:
    from botkit.tools.simulator import Simulator, SimulatorError


def __getattr__(name: str) -> _typing.Any:
    """Imports the test tooling on first use (`from botkit import Simulator`)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'botkit' has no attribute {name!r}")
    value = getattr(_importlib.import_module(module), name)
    globals()[name] = value
    return value
