"""on.stale and the conversation's stale_taps and stale_text: mistakes are DefinitionErrors at
import, naming conversation, handler and state."""

from __future__ import annotations

import pytest

from botkit import Context, Conversation, DefinitionError, State, Text, on


def test_on_stale_for_a_state_that_does_not_exist() -> None:
    with pytest.raises(DefinitionError, match=r"Shop.*old.*'nowhere'"):

        class Shop(Conversation):
            idle = State(initial=True)

            @on.stale(states=["nowhere"])
            async def old(self, ctx: Context) -> None: ...


def test_two_on_stale_handlers_for_one_state() -> None:
    with pytest.raises(DefinitionError, match=r"Shop: state 'idle' has two handlers.*one.*two"):

        class Shop(Conversation):
            idle = State(initial=True)

            @on.stale()
            async def one(self, ctx: Context) -> None: ...

            @on.stale(states=[idle])
            async def two(self, ctx: Context) -> None: ...


def test_an_on_stale_handler_turns_stale_taps_on_and_is_no_user_input() -> None:
    class Shop(Conversation):
        idle = State(initial=True)
        asking = State(prompt=Text("¿Algo?"))

        @on.stale(states=[asking], to=idle)
        async def old(self, ctx: Context) -> None: ...

    assert Shop.spec.stale_taps
    assert Shop.spec.takes("asking") == []  # a stale tap is not something to offer

    class Plain(Conversation):
        idle = State(initial=True)

    assert not Plain.spec.stale_taps
    assert Plain.stale_text == Text("Esa opción ya no está disponible.")
