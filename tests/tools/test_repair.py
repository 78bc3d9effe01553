"""`botkit events`, `botkit sends` and `botkit conversations` (botkit/tools/repair.py), run as
`main([...])` on a real SQLite file (and once on PostgreSQL) that a worker's store filled:
Juan's "boom" failed in its handler, his "hola" after it went through and queued a reply whose
send the provider refused; Ana has an event nobody processed yet.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from botkit.store import open_store
from botkit.store.base import (
    DONE,
    FAILED,
    PENDING,
    EventResult,
    LaneOutcome,
    NewEvent,
    NewSend,
    SendLaneOutcome,
    SendOutcome,
    Session,
    Store,
)
from botkit.store.repair import RETRIED
from botkit.tools.cli import main
from botkit.wire.window import Window

from .processes import Deployment

PN = "555123456789"
JUAN = "5491140123456"
ANA = "5491140000001"
TARGET = "bots.hello"


def message(event_id: str, wa_id: str, text: str) -> NewEvent:
    envelope = {
        "id": event_id,
        "type": "whatsapp.message.received",
        "phone_number_id": PN,
        "data": {
            "contact": {"wa_id": wa_id, "profile": {"name": "Juan"}},
            "message": {"from": wa_id, "id": f"wamid.{event_id}", "timestamp": str(int(time.time())),
                        "type": "text", "text": {"body": text}},
        },
    }  # fmt: skip
    return NewEvent(event_id, f"wamid.{event_id}", "message", PN, wa_id, envelope)


async def fill(store: Store) -> None:
    """What a worker would have left: see the module docstring."""
    await store.open()
    try:
        await store.inbox.add(
            [message("evt_boom", JUAN, "boom"), message("evt_hola", JUAN, "hola")]
        )
        [lane] = await store.inbox.claim("W", 10, 60.0)
        boom, hola = lane.events
        reply = NewSend(PN, JUAN, "key_hola_0", "text", {"body": "¡Hola Juan!"}, "evt_hola")
        outcome = LaneOutcome(
            PN, JUAN, "W",
            (EventResult(boom.seq, boom.lane_seq, FAILED, "RuntimeError: the agenda is down"),
             EventResult(hola.seq, hola.lane_seq, DONE)),
            session=Session(PN, JUAN, "Hello", "asking", {"news": True}, "v1"),
            window=Window(time.time(), hola.lane_seq), sends=(reply,),
        )  # fmt: skip
        assert await store.inbox.complete([outcome]) == [True]
        [out] = await store.outbox.claim("O", 10, 60.0)
        refused = SendOutcome(out.sends[0].seq, FAILED, 1, error="GoSendAPI 400: bad parameter")
        record = SendLaneOutcome(PN, JUAN, "O", (refused,), out.position)
        assert await store.outbox.record([record]) == [True]
        await store.inbox.add([message("evt_ana", ANA, "hola")])
    finally:
        await store.aclose()


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A SQLite file filled as the module docstring says, named by BOTKIT_DATABASE."""
    for name in list(os.environ):
        if name.startswith(("GOSENDAPI_", "BOTKIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() prepends "."
    path = str(tmp_path / "bot.db")
    asyncio.run(fill(open_store(path, worker=True)))
    monkeypatch.setenv("BOTKIT_DATABASE", path)
    return path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def statuses(database: str, *event_ids: str) -> list[str | None]:
    async def read() -> list[str | None]:
        store = open_store(database)
        await store.open()
        try:
            found = [await store.inspect.event_status(e) for e in event_ids]
        finally:
            await store.aclose()
        return [None if f is None else f[0] for f in found]

    return asyncio.run(read())


# --- events -----------------------------------------------------------------------------------


def test_events_failed_lists_each_with_the_user_masked(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "events", "failed", TARGET)
    assert code == 0
    header, line = out.splitlines()
    assert header.split() == ["EVENT", "USER", "KIND", "FAILED", "AT", "ATTEMPTS", "ERROR"]
    assert line.split()[:3] == ["evt_boom", "54911****3456", "message"]
    assert line.endswith("RuntimeError: the agenda is down")
    assert JUAN not in out


def test_events_show_prints_status_attempts_error_and_the_envelope(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "events", "show", TARGET, "evt_boom")
    assert code == 0
    assert "status:           failed" in out
    assert "attempts:         1" in out
    assert "error:            RuntimeError: the agenda is down" in out
    assert '"body": "boom"' in out and f'"from": "{JUAN}"' in out


def test_events_retry_queues_a_copy_and_the_original_is_retried(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "events", "retry", TARGET, "evt_boom")
    assert code == 0
    assert out.strip() == (
        "queued evt_boom again as evt_boom~retry1: it runs after the events its user sent since"
    )
    assert statuses(database, "evt_boom", "evt_boom~retry1") == [RETRIED, PENDING]
    assert run(capsys, "events", "failed", TARGET)[1].strip() == "no failed events"
    code, _, err = run(capsys, "events", "retry", TARGET, "evt_boom")
    assert code == 1
    assert err.strip() == (
        "botkit: event 'evt_boom' is retried: only a failed event can be retried"
    )


def test_events_retry_all_failed(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "events", "retry", TARGET, "--all-failed")
    assert code == 0
    assert out.splitlines() == ["retried 1 failed event", "  evt_boom as evt_boom~retry1"]


def test_an_unknown_event_is_exit_1_with_a_clear_message(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "events", "show", TARGET, "evt_nope")
    assert (code, out) == (1, "")
    assert err.strip() == "botkit: no event 'evt_nope' in the inbox"


def test_json_prints_the_admin_apis_answer(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "events", "failed", TARGET, "--json")
    assert code == 0
    [line] = json.loads(out)
    assert (line["event_id"], line["user"], line["status"]) == ("evt_boom", "54911****3456", FAILED)


# --- sends ------------------------------------------------------------------------------------


def test_sends_failed_and_retry(database: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "sends", "failed", TARGET)
    assert code == 0
    _, line = out.splitlines()
    assert line.split()[:3] == ["1", "54911****3456", "text"]
    assert line.endswith("GoSendAPI 400: bad parameter")
    shown = run(capsys, "sends", "show", TARGET, "1")[1]
    assert "idempotency_key:      key_hola_0" in shown and '"body": "¡Hola Juan!"' in shown
    code, out, _ = run(capsys, "sends", "retry", TARGET, "1")
    assert code == 0
    assert out.strip() == "send 1 is pending again, as key_hola_0-r1"
    assert run(capsys, "sends", "failed", TARGET)[1].strip() == "no failed sends"


# --- conversations ----------------------------------------------------------------------------


def test_conversations_show_prints_state_data_window_and_messages(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "conversations", "show", TARGET, JUAN)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"user {JUAN} (conversation Hello)"
    assert lines[1] == f"  number {PN}: state asking"
    assert lines[2] == '    data: {"news":true}'
    assert lines[3].startswith("    window: open, closes at ")
    assert lines[4] == "    pending: 0 events, 0 sends"
    assert lines[5] == "  messages (latest 3):"
    assert lines[6].endswith("in   boom  [failed: RuntimeError: the agenda is down]")
    assert lines[7].endswith("in   hola  [done]")
    assert lines[8].endswith("out  ¡Hola Juan!  [failed: GoSendAPI 400: bad parameter]")


def test_conversations_reset_puts_the_user_at_the_initial_state(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "conversations", "reset", TARGET, JUAN)
    assert code == 0
    assert out.strip() == f"user {JUAN}: back at state start with empty data (1 session deleted)"
    shown = run(capsys, "conversations", "show", TARGET, JUAN)[1].splitlines()
    assert shown[1:3] == [
        f"  number {PN}: state start (initial: no session stored)",
        "    data: {}",
    ]


def test_conversations_forget_deletes_the_user_and_says_what(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, "conversations", "forget", TARGET, JUAN)
    assert code == 0
    assert out.strip() == (
        f"user {JUAN} forgotten: deleted 1 session, 2 events, 1 event result, 1 send, "
        "0 delivery statuses, 1 lane (6 rows)"
    )
    code, _, err = run(capsys, "conversations", "show", TARGET, JUAN)
    assert code == 1
    assert (
        err.strip()
        == f"botkit: no user {JUAN} in the store: not one event, send or session of theirs"
    )
    assert statuses(database, "evt_boom", "evt_ana") == [None, PENDING]


def test_conversations_forget_refuses_while_events_are_pending_and_names_how_many(
    database: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "conversations", "forget", TARGET, ANA)
    assert (code, out) == (1, "")
    assert err.strip() == (
        f"botkit: user {ANA} has 1 event not processed yet (pending or running): nothing was "
        "deleted; wait until the workers have processed them (botkit conversations show) and "
        "forget again"
    )
    assert statuses(database, "evt_ana") == [PENDING]


# --- the database -----------------------------------------------------------------------------


def test_a_database_that_is_not_there_is_an_error_not_a_new_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BOTKIT_DATABASE", raising=False)
    monkeypatch.setattr(sys, "path", [str(Path(__file__).resolve().parents[2]), *sys.path])
    code, _, err = run(capsys, "events", "failed", TARGET)
    assert code == 2
    assert err.strip() == (
        "botkit: error: no database at botkit-hello.db: run this where the bot runs, or name "
        "its database (BOTKIT_DATABASE, or --database)"
    )
    assert list(tmp_path.iterdir()) == []


def test_the_commands_work_on_postgresql(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(fill(open_store(postgres_url, pool_size=2)))
    monkeypatch.setattr(sys, "path", list(sys.path))
    database = ("--database", postgres_url)
    assert (
        run(capsys, "events", "failed", TARGET, *database)[1].splitlines()[1].startswith("evt_boom")
    )
    assert run(capsys, "events", "retry", TARGET, "evt_boom", *database)[0] == 0
    assert run(capsys, "sends", "retry", TARGET, "--all-failed", *database)[1].startswith(
        "retried 1 failed send"
    )
    code, _, err = run(capsys, "conversations", "forget", TARGET, JUAN, *database)
    assert code == 1 and "has 1 event not processed yet" in err  # the retried copy
    assert run(capsys, "conversations", "reset", TARGET, JUAN, *database)[0] == 0
    assert (
        "state start (initial" in run(capsys, "conversations", "show", TARGET, JUAN, *database)[1]
    )


# --- beside a running bot ---------------------------------------------------------------------


@pytest.mark.slow
def test_beside_botkit_run_the_commands_and_the_api_see_and_reset_a_live_conversation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`botkit run bots.clinic` (its workers in the process, against the built-in fake) holds
    the SQLite file's worker lock; the commands open it beside it, and the admin API answers
    from the running process."""
    db = str(tmp_path / "run.db")
    monkeypatch.setattr(sys, "path", list(sys.path))
    env = {"BOTKIT_DATABASE": db, "BOTKIT_API_TOKEN": "tok_ops"}
    with Deployment(tmp_path, env) as deployment:
        web = deployment.web("bots.clinic", workers=True)
        with httpx.Client(base_url=web.url, timeout=5.0) as client:
            inbound = {"wa_id": JUAN, "name": "Juan", "text": "hola"}

            def lists() -> list[Any]:
                sent = client.get("/provider/_fake/messages").json()
                return [m for m in sent if m["type"] == "interactive"]

            client.post("/provider/_fake/inbound", json=inbound)
            deployment.wait_until(lists, what="the clinic's list", process=web)
            shown = run(capsys, "conversations", "show", "bots.clinic", JUAN, "--database", db)
            assert f"  number {PN}: state choosing_service" in shown[1].splitlines()
            assert (
                run(capsys, "conversations", "reset", "bots.clinic", JUAN, "--database", db)[0] == 0
            )
            auth = {"Authorization": "Bearer tok_ops"}
            [number] = client.get(f"/admin/conversations/{JUAN}", headers=auth).json()["numbers"]
            assert (number["state"], number["initial"]) == ("idle", True)
            client.post("/provider/_fake/inbound", json={**inbound, "text": "hola otra vez"})
            deployment.wait_until(
                lambda: len(lists()) == 2 or None, what="the list again", process=web
            )  # from idle again: a text starts a booking


def test_a_limit_that_is_not_a_positive_number_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["events", "failed", TARGET, "--limit", "0"])
    assert caught.value.code == 2
    assert "a whole number from 1 to 1000, not '0'" in capsys.readouterr().err
