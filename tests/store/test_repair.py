"""botkit.store.repair's rules for the ids of retried events and the keys of retried sends."""

from __future__ import annotations

from botkit.store.repair import retry_event_id, retry_key


def test_retry_ids_and_keys_count_up_from_the_first() -> None:
    assert retry_event_id("evt_1") == "evt_1~retry1"
    assert retry_event_id("evt_1~retry1") == "evt_1~retry2"
    assert retry_event_id("evt_1~retry9") == "evt_1~retry10"
    assert retry_key("bk1_abc") == "bk1_abc-r1"
    assert retry_key("bk1_abc-fb-r2") == "bk1_abc-fb-r3"
