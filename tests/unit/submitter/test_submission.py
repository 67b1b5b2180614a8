"""The submission core with a scripted transport and a fake clock: outcomes, retries, token
refresh, unchanged items, per-item order."""

import asyncio
import json

import pytest
from submitter_fakes import FakeClock, ScriptedTransport, error, login_refused

from catalog_sync.runtime.usage_plans import UsagePlan
from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import Answer, RetryPolicy
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.outcomes import completed_event
from catalog_sync.submitter.rate import DEFAULT_PLANS
from catalog_sync.submitter.submission import LoginFailed, MemoryHashes, SpApiPorts, Submitter

ATTRS = {"item_name": [{"value": "x"}]}


def ready(sku="SKU-1", **fields):
    event = {"event_id": f"ev-{sku}", "run_id": "run-1", "mode": "production", "reference": sku,
             "item_type": "product", "operation": "upsert", "seller_id": "S1", "marketplace_id": "ATVPDKIKX0DER",
             "product_type": "HAIRBAND", "requirements": "LISTING", "parent_reference": None,
             "attributes_json": json.dumps(ATTRS), "content_hash": f"h-{sku}"}
    event.update(fields)
    return event


def make(script=(), policy=None, hashes=None, clock=None):
    clock = clock or FakeClock()
    transport = ScriptedTransport(clock, script)
    accounts = Accounts({"S1": Account("S1", "app", "secret", "Atzr|1")})
    ports = SpApiPorts(accounts=accounts, transport=transport, endpoints=Endpoints("http://prod", "http://sandbox"),
                       clock=clock, sleep=clock.sleep)
    submitter = Submitter(ports, policy=policy or RetryPolicy(), hashes=hashes)
    return submitter, transport, clock


def submit(submitter, *events):
    async def main():
        return await asyncio.gather(*(submitter.submit(e) for e in events))
    results = asyncio.run(main())
    return results if len(results) > 1 else results[0]


def test_accepted_carries_request_and_submission_ids_and_becomes_a_finished_event():
    submitter, transport, _ = make()
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.http_status, done.result.attempts) == ("accepted", 200, 1)
    event = completed_event(done.ready, done.result, done.endpoint)
    assert (event["status"], event["request_id"], event["attempt_request_ids"], event["submission_id"]) == \
        ("finished", "req-1", ["req-1"], "sub-1")
    assert event["endpoint"] == "production" and event["content_hash"] == "h-SKU-1"


def test_429_slows_the_seller_down_then_succeeds_with_every_request_id_kept():
    submitter, transport, clock = make([error(429, "QuotaExceeded"), error(429, "QuotaExceeded")])
    done = submit(submitter, ready())
    assert done.result.outcome == "accepted" and done.result.attempts == 3
    assert done.result.request_ids == ["req-1", "req-2", "req-3"]
    assert submitter.ports.limiter.lane("S1", "put").rate.rate < 5.0
    assert all(d > 0 for d in clock.slept)


def test_a_sellers_own_usage_plan_from_the_accounts_file_replaces_the_default():
    clock = FakeClock()
    accounts = Accounts({"S1": Account("S1", "app", "secret", "Atzr|1"),
                         "S2": Account("S2", "app", "secret", "Atzr|2", rates={"put": UsagePlan(20.0, 40)})})
    submitter = Submitter(SpApiPorts(accounts=accounts, transport=ScriptedTransport(clock),
                                     endpoints=Endpoints("http://prod"), clock=clock, sleep=clock.sleep))
    assert submitter.ports.limiter.lane("S2", "put").rate.plan == UsagePlan(20.0, 40)
    assert submitter.ports.limiter.lane("S1", "put").rate.plan == DEFAULT_PLANS["put"]


def test_503_and_timeouts_are_retried_and_latency_includes_the_backoff():
    submitter, transport, clock = make([error(503, "ServiceUnavailable"), Answer(None, failure="timeout")])
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.attempts) == ("accepted", 3)
    assert done.result.latency_ms >= sum(clock.slept) * 1000 * 0.99


@pytest.mark.parametrize("status", [400, 413, 415, 404])
def test_final_http_errors_are_not_retried(status):
    submitter, transport, _ = make([error(status, "InvalidInput", "Invalid input")])
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.status, done.result.http_status) == ("rejected", "error", status)
    assert (done.result.error_code, done.result.error_message, done.result.attempts) == \
        ("InvalidInput", "Invalid input", 1)


def test_403_refreshes_the_token_once_then_gives_up():
    submitter, transport, _ = make([error(403, "Unauthorized"), error(403, "Unauthorized")])
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.http_status, done.result.attempts) == ("rejected", 403, 2)
    assert transport.refreshes == 1
    assert [c[2] for c in transport.calls] == [1, 2]  # the retry carried the new token


def test_403_then_success_after_refresh():
    submitter, transport, _ = make([error(403, "Unauthorized")])
    assert submit(submitter, ready()).result.outcome == "accepted"


def test_retries_exhausted_end_as_failed_with_the_last_error():
    submitter, transport, _ = make([error(500, "InternalFailure")] * 10, policy=RetryPolicy(max_attempts=4))
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.attempts, done.result.error_code) == ("failed", 4, "InternalFailure")
    assert "gave up after 4 attempts" in done.result.error_message


def test_time_budget_bounds_retries_too():
    policy = RetryPolicy(max_attempts=100, max_elapsed_s=5.0, base_delay_s=1.0, max_delay_s=2.0)
    submitter, transport, clock = make([error(503, "ServiceUnavailable")] * 100, policy=policy)
    done = submit(submitter, ready())
    assert done.result.outcome == "failed" and done.result.latency_ms <= 5000 + 100


def test_invalid_carries_amazons_issues_leniently_parsed():
    body = {"sku": "SKU-1", "status": "INVALID", "submissionId": "s", "issues": [
        {"message": "warning only", "severity": "WARNING"},
        {"code": "90220", "message": "'brand' is required but not supplied.", "severity": "ERROR",
         "attributeNames": ["brand"]}]}
    submitter, _, _ = make([Answer(200, body=body)])
    done = submit(submitter, ready())
    assert (done.result.outcome, done.result.status, done.result.error_code) == ("invalid", "error", "90220")
    assert done.result.issues[0] == {"code": None, "message": "warning only", "severity": "WARNING",
                                     "attribute_names": [], "categories": []}


def test_categories_are_never_sent_and_deletes_call_delete():
    submitter, transport, _ = make()
    category, deleted = submit(submitter, ready("CAT", item_type="category"), ready("OLD", operation="delete"))
    assert (category.result.outcome, category.result.status, category.result.attempts) == ("not_sent", "finished", 0)
    assert deleted.result.outcome == "deleted"
    assert [c[0] for c in transport.calls] == ["/listings/2021-08-01/items/S1/OLD"]


def test_unchanged_production_items_are_skipped_but_preview_and_test_never_are():
    hashes = MemoryHashes()
    submitter, transport, _ = make(hashes=hashes)
    first = submit(submitter, ready())
    assert first.hash_change == ("S1|ATVPDKIKX0DER|SKU-1", "h-SKU-1")
    again, preview, sandbox = submit(submitter, ready(), ready(mode="preview"), ready(mode="test"))
    assert again.result.outcome == "unchanged" and again.result.status == "finished"
    assert (preview.result.outcome, sandbox.result.outcome) == ("valid", "accepted")
    assert len(transport.calls) == 3
    changed = submit(submitter, ready(content_hash="h-new"))
    assert changed.result.outcome == "accepted"
    gone = submit(submitter, ready(operation="delete"))
    assert gone.hash_change == ("S1|ATVPDKIKX0DER|SKU-1", None)
    assert submit(submitter, ready(content_hash="h-new")).result.outcome == "accepted"


def test_rejected_items_are_not_remembered_as_accepted():
    submitter, _, _ = make([error(400, "InvalidInput")])
    assert submit(submitter, ready()).hash_change is None
    assert submit(submitter, ready()).result.outcome == "accepted"


def test_same_sku_and_parent_child_keep_their_order():
    # The parent's first attempt is throttled; its child and a second version must not overtake it.
    submitter, transport, _ = make([error(429, "QuotaExceeded")])
    parent, child, parent_v2 = submit(submitter, ready("P"), ready("C", parent_reference="P"),
                                      ready("P", content_hash="h-P2"))
    assert [c[0].rsplit("/", 1)[1] for c in transport.calls] == ["P", "P", "C", "P"]
    assert (parent.result.outcome, child.result.outcome, parent_v2.result.outcome) == ("accepted",) * 3


def test_unknown_seller_and_refused_login_are_final_errors():
    submitter, transport, _ = make([login_refused()])
    nobody = submit(submitter, ready(seller_id="UNKNOWN"))
    assert (nobody.result.outcome, nobody.result.error_code) == ("failed", "no_credentials")
    refused = submit(submitter, ready())
    assert (refused.result.outcome, refused.result.error_code, refused.result.http_status) == \
        ("rejected", "invalid_grant", 400)
    assert "secret" not in refused.result.error_message


def test_a_failing_login_service_is_retried():
    submitter, _, _ = make([LoginFailed(503, "HTTP503", "unavailable", retryable=True)])
    assert submit(submitter, ready()).result.outcome == "accepted"


# -- a stop or a revoke cancels the submission's task ------------------------------------------

async def _cancel_during(submitter, transport, wait_for_call: bool, cancels: int = 1, release: bool = True):
    """Submit, cancel the task `cancels` times once it is in the login (or, with `wait_for_call`,
    once its call is on the wire), then let the held step go on."""
    held = asyncio.Event()
    if wait_for_call:
        transport.hold_answer = held
    else:
        transport.hold_login = held
    task = asyncio.ensure_future(submitter.submit(ready()))
    for _ in range(10):  # the task runs up to the held step (the fake clock never really sleeps)
        await asyncio.sleep(0)
    assert len(transport.calls) == (1 if wait_for_call else 0) and not task.done()
    for _ in range(cancels):
        task.cancel()
        await asyncio.sleep(0)
    if release:
        held.set()
    try:
        return await task
    except asyncio.CancelledError:
        return "cancelled"


def test_a_stop_while_a_call_is_on_the_wire_waits_for_its_answer_and_records_it():
    submitter, transport, _ = make()
    done = asyncio.run(_cancel_during(submitter, transport, wait_for_call=True))
    assert done != "cancelled", "the answer of a call already sent was thrown away"
    assert (done.result.outcome, done.result.attempts, done.result.request_ids) == ("accepted", 1, ["req-1"])
    assert submitter.hashes.get("S1|ATVPDKIKX0DER|SKU-1") == "h-SKU-1"  # remembered: no resend later


def test_a_stop_before_the_call_goes_out_gives_the_item_back_unsent():
    submitter, transport, _ = make()
    assert asyncio.run(_cancel_during(submitter, transport, wait_for_call=False)) == "cancelled"
    assert transport.calls == []


def test_an_interrupted_call_answered_429_is_not_retried_the_next_owner_sends_it():
    submitter, transport, _ = make([error(429, "QuotaExceeded")])
    assert asyncio.run(_cancel_during(submitter, transport, wait_for_call=True)) == "cancelled"
    assert len(transport.calls) == 1


def test_a_second_cancel_drops_a_call_that_does_not_answer():
    submitter, transport, _ = make()
    outcome = asyncio.run(_cancel_during(submitter, transport, wait_for_call=True, cancels=2, release=False))
    assert outcome == "cancelled" and len(transport.calls) == 1


def test_variants_of_a_parent_amazon_turned_down_in_the_run_are_not_sent_and_name_it():
    submitter, transport, _ = make([error(400, "InvalidInput")])
    parent = submit(submitter, ready("P-1"))
    children = submit(submitter, ready("P-1-A", item_type="variant", parent_reference="P-1"),
                      ready("P-1-B", item_type="variant", parent_reference="P-1"))
    assert parent.result.status == "error"
    assert [c.result.error_code for c in children] == ["parent_not_accepted"] * 2
    assert all("P-1" in c.result.error_message and "not sent" in c.result.error_message for c in children)
    assert [path.rsplit("/", 1)[1] for path, _, _ in transport.calls] == ["P-1"]  # no child reached Amazon


def test_variants_go_when_their_parent_was_accepted_or_is_not_in_the_run():
    submitter, transport, _ = make()
    submit(submitter, ready("P-1"))
    accepted, orphan_of_this_run, other_run = submit(
        submitter, ready("P-1-A", item_type="variant", parent_reference="P-1"),
        ready("Q-1-A", item_type="variant", parent_reference="Q-1"),
        ready("P-1-B", item_type="variant", parent_reference="P-1", run_id="run-2"))
    assert [r.result.outcome for r in (accepted, orphan_of_this_run, other_run)] == ["accepted"] * 3
    assert len(transport.calls) == 4
