"""The status rules of interfaces.md §2 as pure folds: arrival order and duplicates do not matter."""

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from catalog_sync.recorder.projection import (
    InvalidEvent,
    ItemState,
    Loaded,
    RunState,
    effective_run_status,
    normalise,
    project,
)
from tests.support.sample_events import SELLER, US, SampleRun


def item_events(run, *pairs):
    return [normalise(kind, event) for kind, event in pairs]


def fold(events):
    state = ItemState.empty(events[0])
    for e in events:
        state.apply(e)
    return state


def test_pending_until_a_final_event_arrives():
    run = SampleRun()
    change = item_events(run, run.changed("HB-1"))
    assert fold(change).status == "pending"
    done = fold(change + item_events(run, run.submitted("HB-1")))
    assert done.status == "finished"
    assert done.request_id and done.submission_id


def test_amazon_response_before_the_catalog_change_still_finishes():
    run = SampleRun()
    change = run.changed("HB-1")
    answer = run.submitted("HB-1")
    state = fold(item_events(run, answer, change))  # the change arrives last
    assert state.status == "finished"


def test_the_latest_final_event_by_event_time_wins_whatever_the_arrival_order():
    run = SampleRun()
    change = run.changed("HB-1")
    first_try = run.submitted("HB-1", accepted=False, http_status=500, error_code="InternalFailure",
                              error_message="We encountered an internal error.")
    retry = run.submitted("HB-1")  # later event time: the retry's answer
    for order in ([change, first_try, retry], [change, retry, first_try], [retry, first_try, change]):
        state = fold(item_events(run, *order))
        assert state.status == "finished", order
        assert state.request_id == retry[1]["request_id"]
        assert state.error is None


def test_a_late_validation_error_older_than_the_submission_changes_nothing():
    run = SampleRun()
    change = run.changed("HB-1")
    stale_failure = run.validation_failed("HB-1")
    answer = run.submitted("HB-1")
    state = fold(item_events(run, change, answer, stale_failure))
    assert state.status == "finished"


def test_a_newer_catalog_change_makes_a_finished_item_pending_again():
    first, second = SampleRun(), SampleRun()
    second.start = first.start + timedelta(hours=1)
    state = fold(item_events(first, first.changed("HB-1"), first.submitted("HB-1"), second.changed("HB-1")))
    assert state.status == "pending"
    assert state.run_id == second.run_id


def test_applying_the_same_event_twice_changes_nothing():
    run = SampleRun()
    events = item_events(run, run.changed("HB-1"), run.submitted("HB-1", accepted=False))
    once = fold(events)
    twice = fold(events + events)
    assert once == twice


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(6)))
def test_any_arrival_order_gives_the_same_state(order):
    run = SampleRun()
    events = item_events(
        run,
        run.changed("HB-1"),
        run.validation_failed("HB-1"),
        run.changed("HB-1"),
        run.submitted("HB-1", accepted=False),
        run.submitted("HB-1", accepted=False, http_status=403, error_code="Unauthorized", error_message="denied"),
        run.submitted("HB-1"),
    )
    expected = fold(events)
    assert fold([events[i] for i in order]) == expected
    assert expected.status == "finished"


def test_validation_error_details_list_every_error():
    run = SampleRun()
    state = fold(item_events(run, run.changed("HB-1"), run.validation_failed("HB-1")))
    assert state.status == "error"
    assert state.error["type"] == "validation"
    assert state.error["code"] == "schema.required"
    assert "and 1 more" in state.error["message"]
    assert [d["path"] for d in state.error["details"]] == ["/attributes/brand", "/attributes/item_name/0/value"]


def test_amazon_invalid_details_carry_the_issues_and_request_id():
    run = SampleRun()
    answer = run.submitted("HB-1", accepted=False)
    state = fold(item_events(run, answer))
    assert state.error == {"type": "amazon_response", "code": "90220",
                           "message": "'condition_type' is required but not supplied.",
                           "details": answer[1]["issues"]}
    assert state.request_id == answer[1]["request_id"]


def test_http_rejection_uses_amazons_error_code_and_message():
    run = SampleRun()
    state = fold(item_events(run, run.submitted("HB-1", accepted=False, http_status=400, error_code="InvalidInput",
                                                error_message="Request has missing or invalid parameters")))
    assert state.error["code"] == "InvalidInput"
    assert state.error["message"] == "Request has missing or invalid parameters"


def test_a_change_without_seller_lands_on_the_default_sellers_item():
    run = SampleRun()
    kind, event = run.changed("HB-1", seller_id=None)
    assert normalise(kind, event, default_seller_id=SELLER).item_key == f"{SELLER}|{US}|HB-1"


@pytest.mark.parametrize("field", ["event_id", "event_time", "marketplace_id", "reference"])
def test_an_event_missing_a_required_field_is_rejected(field):
    run = SampleRun()
    kind, event = run.changed("HB-1")
    with pytest.raises(InvalidEvent):
        normalise(kind, {**event, field: None})


def test_submission_with_unknown_status_is_rejected():
    run = SampleRun()
    kind, event = run.submitted("HB-1")
    with pytest.raises(InvalidEvent):
        normalise(kind, {**event, "status": "maybe"})


# -- runs -----------------------------------------------------------------------------------
def run_batch(run, *pairs, loaded=None):
    items = [normalise(k, e) for k, e in pairs if k not in ("RunOpened", "RunClosed")]
    runs = [(k, e) for k, e in pairs if k in ("RunOpened", "RunClosed")]
    return project(loaded or Loaded(), items, runs)


def test_run_finishes_when_closed_and_every_counted_item_is_final():
    run = SampleRun()
    p = run_batch(run, run.opened(), run.changed("A"), run.changed("B"), run.closed(2), run.submitted("A"))
    r = p.runs[run.run_id]
    assert (r.status, r.total, r.pending, r.finished) == ("in_progress", 2, 1, 1)
    p2 = run_batch(run, run.submitted("B"), loaded=Loaded(p.items, p.run_items, p.runs))
    r2 = p2.runs[run.run_id]
    assert (r2.status, r2.pending, r2.finished) == ("finished", 0, 2)
    assert r2.finished_at == r2.last_event_at


def test_run_with_an_error_finishes_with_errors():
    run = SampleRun()
    p = run_batch(run, run.opened(), run.changed("A"), run.changed("B"), run.validation_failed("A"),
                  run.submitted("B"), run.closed(2))
    assert p.runs[run.run_id].status == "finished_with_errors"


def test_run_is_not_finished_before_it_is_closed_or_while_changes_are_missing():
    run = SampleRun()
    p = run_batch(run, run.opened(), run.changed("A"), run.submitted("A"))
    assert p.runs[run.run_id].status == "in_progress"  # not closed yet
    run2 = SampleRun()
    # Outcome of B arrived, but B's own change (and C's) did not: 3 published, 2 received.
    p = run_batch(run2, run2.opened(), run2.changed("A"), run2.submitted("A"), run2.submitted("B"),
                  run2.changed("B"), run2.closed(3))
    assert p.runs[run2.run_id].status == "in_progress"


def test_items_before_run_opened_create_the_run_and_keep_the_opened_start():
    run = SampleRun()
    change = run.changed("A")
    p = run_batch(run, change)
    assert p.runs[run.run_id].mode == "test"
    opened = run.opened()
    p = run_batch(run, opened, loaded=Loaded(p.items, p.run_items, p.runs))
    assert p.runs[run.run_id].started_at == opened[1]["started_at"].timestamp() * 1000


def test_interrupted_when_nothing_happened_for_longer_than_the_stall_threshold():
    r = RunState("r", status="in_progress", last_event_at=1_000_000)
    assert effective_run_status(r, now_ms=1_000_000 + 60_000, stall_ms=120_000) == "in_progress"
    assert effective_run_status(r, now_ms=1_000_000 + 180_000, stall_ms=120_000) == "interrupted"
    done = RunState("r", status="finished", last_event_at=0)
    assert effective_run_status(done, now_ms=10**12, stall_ms=1) == "finished"


def test_counter_deltas_follow_each_items_status():
    run = SampleRun()
    p = run_batch(run, run.changed("A"), run.changed("B"))
    assert p.item_count_deltas == {(run.run_id, "product", "pending"): 2}
    p2 = run_batch(run, run.validation_failed("A"), loaded=Loaded(p.items, p.run_items, p.runs))
    assert p2.item_count_deltas == {(run.run_id, "product", "pending"): -1, (run.run_id, "product", "error"): 1}


def test_the_newest_catalog_payload_of_each_item_is_kept_whatever_the_order():
    run = SampleRun()
    older = run.changed("HB-1")
    newer = run.changed("HB-1")
    newer[1]["attributes_json"] = '{"brand":[{"value":"Other"}]}'
    newer[1]["operation"] = "delete"
    other = run.changed("HB-2", item_type="variant")
    for order in ([older, newer, other], [newer, other, older]):
        p = project(Loaded(), item_events(run, *order), [])
        assert set(p.payloads) == {f"{SELLER}|{US}|HB-1", f"{SELLER}|{US}|HB-2"}
        kept = p.payloads[f"{SELLER}|{US}|HB-1"]
        assert kept.event_id == newer[1]["event_id"]
        operation, product_type, requirements, parent, attributes_json, changed_at = kept.payload
        assert (operation, product_type, requirements, attributes_json) == (
            "delete", "HAIRBAND", "LISTING", '{"brand":[{"value":"Other"}]}')
        assert changed_at == 1795773600000  # 2026-11-27T10:00Z in epoch ms
        assert p.payloads[f"{SELLER}|{US}|HB-2"].payload[3] == "HB-PARENT"


def hashed(event_pair, content_hash):
    event_pair[1]["content_hash"] = content_hash
    return event_pair


def test_the_last_finished_hash_counts_only_what_amazon_kept():
    production, preview, test = SampleRun(mode="production"), SampleRun(mode="preview"), SampleRun(mode="test")
    events = [
        hashed(production.submitted("HB-1"), "h-accepted"),
        hashed(production.submitted("HB-2", accepted=False), "h-invalid"),  # Amazon kept nothing new
        hashed(preview.submitted("HB-3"), "h-preview"),  # VALID in preview persists nothing
        hashed(test.submitted("HB-4"), "h-sandbox"),
    ]
    p = project(Loaded(), item_events(None, *events), [])
    assert {k: e.finished_hash for k, e in p.finished_hashes.items()} == {
        (f"{SELLER}|{US}|HB-1", "production"): "h-accepted",
        (f"{SELLER}|{US}|HB-4", "test"): "h-sandbox",
    }


def test_the_newest_persisted_outcome_wins_and_unchanged_or_deleted_count():
    run = SampleRun(mode="production")
    first = hashed(run.submitted("HB-1"), "h-1")
    second = hashed(run.submitted("HB-1"), "h-2")
    second[1]["outcome"] = "unchanged"
    deleted = hashed(run.submitted("HB-2"), "h-delete")
    deleted[1]["outcome"], deleted[1]["operation"] = "deleted", "delete"
    for order in ([first, second, deleted], [deleted, second, first]):
        p = project(Loaded(), item_events(run, *order), [])
        assert p.finished_hashes[(f"{SELLER}|{US}|HB-1", "production")].finished_hash == "h-2"
        assert p.finished_hashes[(f"{SELLER}|{US}|HB-2", "production")].finished_hash == "h-delete"


def test_a_delete_a_preview_run_did_not_send_finishes_as_not_sent_and_changes_nothing_amazon_holds():
    live = SampleRun(mode="production")
    preview = SampleRun(mode="preview")
    accepted = hashed(live.submitted("HB-1"), "h-live")
    not_sent = hashed(preview.submitted("HB-1", at=accepted[1]["event_time"] + timedelta(seconds=1)), "h-gone")
    not_sent[1].update(outcome="preview_not_sent", operation="delete", http_status=None, amazon_status=None,
                       request_id=None, attempt_request_ids=[], submission_id=None, attempts=0)
    p = project(Loaded(), item_events(None, accepted, not_sent), [])
    item = p.items[f"{SELLER}|{US}|HB-1"]
    assert (item.status, item.outcome, item.request_id) == ("finished", "preview_not_sent", None)
    assert p.finished_hashes[(f"{SELLER}|{US}|HB-1", "production")].finished_hash == "h-live"


# -- Amazon's view after ACCEPTED (ListingObserved, issue 18 item 5) ------------------------------
def test_an_accepted_item_is_finished_and_awaiting_amazon_until_it_is_seen_live():
    run = SampleRun(mode="production")
    change, accepted = run.changed("HB-1"), run.submitted("HB-1")
    state = fold(item_events(run, change, accepted))
    assert (state.status, state.listing_state, state.outcome) == ("finished", "awaiting", "accepted")
    live = fold(item_events(run, change, accepted, run.observed(accepted, "live")))
    assert (live.status, live.listing_state, live.outcome, live.error) == ("finished", "live", "accepted", None)
    assert live.request_id == accepted[1]["request_id"]  # the acceptance's request stays the item's


def test_an_issue_after_acceptance_makes_the_item_an_amazon_error_with_the_gets_request_id():
    run = SampleRun(mode="production")
    change, accepted = run.changed("HB-1"), run.submitted("HB-1")
    seen = run.observed(accepted, "error", request_id="get-req-1")
    for order in ([change, accepted, seen], [seen, change, accepted]):  # topics are read in any order
        state = fold(item_events(run, *order))
        assert (state.status, state.listing_state) == ("error", "error"), order
        assert state.error == {"type": "amazon_response", "code": "8541",
                               "message": "conflicts with the Amazon catalog", "details": seen[1]["issues"]}
        assert state.request_id == "get-req-1"
    assert normalise(*seen).finished_hash == ""  # publish --changed-only resends it


def test_the_time_limit_leaves_the_item_finished_awaiting_amazon_with_its_note():
    run = SampleRun(mode="production")
    accepted = run.submitted("HB-1")
    state = fold(item_events(run, run.changed("HB-1"), accepted,
                             run.observed(accepted, "awaiting", note="neither live nor in error after 900 s")))
    assert (state.status, state.listing_state, state.listing_note) == \
        ("finished", "awaiting", "neither live nor in error after 900 s")


def test_a_newer_change_after_an_observation_makes_the_item_pending_and_a_new_acceptance_awaits_again():
    first, second = SampleRun(mode="production"), SampleRun(mode="production")
    second.start = first.start + timedelta(hours=1)
    accepted = first.submitted("HB-1")
    events = [first.changed("HB-1"), accepted, first.observed(accepted, "error"), second.changed("HB-1")]
    assert fold(item_events(first, *events)).status == "pending"
    again = fold(item_events(first, *events, second.submitted("HB-1")))
    assert (again.status, again.listing_state, again.error) == ("finished", "awaiting", None)


def test_preview_and_invalid_outcomes_have_no_listing_state():
    preview = SampleRun(mode="preview")
    assert fold(item_events(preview, preview.changed("HB-1"), preview.submitted("HB-1"))).listing_state is None
    run = SampleRun(mode="production")
    assert fold(item_events(run, run.changed("HB-1"), run.submitted("HB-1", accepted=False))).listing_state is None


def test_an_observation_with_an_unknown_state_is_refused():
    run = SampleRun(mode="production")
    kind, event = run.observed(run.submitted("HB-1"), "live")
    with pytest.raises(InvalidEvent):
        normalise(kind, {**event, "listing_state": "glowing"})
