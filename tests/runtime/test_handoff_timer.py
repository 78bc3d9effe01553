"""The pure rules of a handoff's timeout: when its timer is set again or cancelled, whether a
fired one still applies, and where the bot resumes."""

from __future__ import annotations

from botkit.runtime import handoff_timer
from botkit.types import JSONObject
from botkit.wire.handoff import HandoffMark
from botkit.wire.timer import TimerEvent

MARK = HandoffMark(100.0, "reclamo", "confirming", timeout=60.0, resume_to=None, active=100.0)


def fired(since: float, active: float) -> TimerEvent:
    payload: JSONObject = {"data": {}, "guard": {"since": since, "active": active}}
    return TimerEvent.create(
        timer_id="t1", phone_number_id="555", wa_id="549", name=handoff_timer.NAME,
        due_at=160.0, payload=payload,
    )  # fmt: skip


def test_a_message_sets_the_timer_again_from_its_time() -> None:
    later = handoff_timer.touched(MARK, 130.0)
    [write] = handoff_timer.writes(MARK, later, "evt_1")
    assert (write.name, write.due_at) == ("handoff:resume", 190.0)
    assert handoff_timer.writes(MARK, MARK, "evt_2") == []  # nothing passed: unchanged


def test_a_handoff_without_a_timeout_has_no_timer() -> None:
    plain = HandoffMark(100.0, "reclamo", "confirming")
    assert handoff_timer.touched(plain, 130.0) == plain
    assert handoff_timer.writes(None, plain, "evt_1") == []
    assert handoff_timer.writes(plain, None, "evt_2") == []


def test_ending_a_handoff_with_a_timeout_cancels_its_timer() -> None:
    [write] = handoff_timer.writes(MARK, None, "evt_1")
    assert (write.name, write.due_at) == ("handoff:resume", None)


def test_a_fired_timeout_applies_only_to_its_handoff_with_nothing_passed_since() -> None:
    event = fired(100.0, 100.0)
    assert handoff_timer.is_resume(event)
    assert handoff_timer.stale(event, MARK) is None
    assert "no longer handed off" in str(handoff_timer.stale(event, None))
    assert "message passed" in str(handoff_timer.stale(event, handoff_timer.touched(MARK, 120.0)))
    assert "earlier handoff" in str(handoff_timer.stale(fired(50.0, 100.0), MARK))


def test_it_resumes_in_resume_to_else_the_handoffs_state_else_the_initial_one() -> None:
    states = ["idle", "confirming", "menu"]
    assert handoff_timer.target(MARK, states, "idle") == "confirming"
    to_menu = HandoffMark(100.0, "", "confirming", 60.0, "menu", 100.0)
    assert handoff_timer.target(to_menu, states, "idle") == "menu"
    assert handoff_timer.target(to_menu, ["idle"], "idle") == "idle"  # both gone in a deploy
