"""bench/users.py: the bulk builder writes stores botkit reads as its own, so a stored user's
next message continues from their stored state (the builder cannot drift into a shape botkit
does not use)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import bots.clinic as clinic
from bench.envelopes import PHONE_NUMBER_ID, wa_id_of
from bench.users import SERVICES, STEPS, build, check, event_id, load_ids, store_files
from botkit import Simulator
from botkit.types import ManualClock
from botkit.wire.idempotency import idempotency_key

USERS = 50


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("users") / "clinic.db"
    build(path, USERS, now=ManualClock().now())
    return path


@pytest.fixture
def store(built: Path, tmp_path: Path) -> Path:
    """A copy of the built store, for a test to change."""
    path = tmp_path / "clinic.db"
    for source, target in zip(store_files(built), store_files(path), strict=True):
        shutil.copyfile(source, target)
    return path


def test_the_built_store_reads_back_through_botkit(built: Path) -> None:
    assert check(built, USERS) == []


def test_load_ids_spread_returning_users_and_number_new_ones_after_the_store() -> None:
    ids = load_ids(1000, 2000)
    returning, new = ids[0::2], ids[1::2]
    assert len(set(returning)) == 1000 and all(0 <= user < 1000 for user in returning)
    assert new == list(range(1000, 2000))


@pytest.mark.anyio
async def test_a_stored_user_continues_from_their_stored_state(store: Path) -> None:
    async with Simulator(clinic, database=store, phone_number_id=PHONE_NUMBER_ID) as sim:
        user = sim.user(wa_id_of(7), name="User 7")
        await user.refresh()
        stored_service = SERVICES[7 % len(SERVICES)][0]
        assert (user.state, user.data) == ("confirmed", {"service": stored_service})

        await user.says("hola")  # confirmed -> choosing_service, the stored data kept
        assert (user.state, user.data) == ("choosing_service", {"service": stored_service})
        assert user.last_message.row_ids == ["general", "specialist", "lab"]
        await user.picks("lab")
        await user.taps("confirm_yes")
        assert user.state == "confirmed"
        assert user.last_message.text == (
            "¡Listo! Tu turno de Laboratorio quedó confirmado. Te esperamos."
        )

        # only the new events ran: the stored ones stay done, none answered again
        sends = await sim.outbox()
        assert len(sends) == USERS * STEPS + 3
        assert all(send.status == "sent" for send in sends)
        mine = await sim.outbox(wa_id_of(7))
        assert [send.idempotency_key for send in mine[:STEPS]] == [
            idempotency_key(event_id(7, step), 0) for step in range(STEPS)
        ]
        assert [send.seq for send in mine[STEPS:]] == [USERS * STEPS + n for n in (1, 2, 3)]
        assert len(sim.sent) == 3

        newcomer = sim.user(wa_id_of(USERS), name="New")
        await newcomer.says("hola")
        assert (newcomer.state, newcomer.data) == ("choosing_service", {})
