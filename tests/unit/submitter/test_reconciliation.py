"""Looking again after ACCEPTED (issue 18 item 5) with a scripted getListingsItem and a fake clock:
live, error with the GET's request id, the time limit, the GET usage plan, notifications, the
static sandbox."""

import asyncio
from datetime import UTC, datetime

from submitter_fakes import FakeClock, ScriptedTransport

from catalog_sync.submitter.accounts import Account, Accounts
from catalog_sync.submitter.classification import Answer
from catalog_sync.submitter.endpoints import Endpoints
from catalog_sync.submitter.reconciliation import ReconcilePolicy, Reconciler, observed_event, wants
from catalog_sync.submitter.submission import SpApiPorts

US = "ATVPDKIKX0DER"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def completed(sku="SKU-1", seller="S1", mode="production", **fields):
    event = {"event_id": f"sc-{sku}", "event_time": T0, "run_id": "run-1", "mode": mode,
             "endpoint": "test" if mode == "test" else "production", "reference": sku, "item_type": "product",
             "operation": "upsert", "seller_id": seller, "marketplace_id": US, "outcome": "accepted",
             "request_id": f"put-{sku}", "submission_id": f"sub-{sku}"}
    event.update(fields)
    return event


def listing(sku, status=(), issues=()):
    return Answer(200, body={"sku": sku, "summaries": [{"marketplaceId": US, "status": list(status)}],
                             "issues": [{**i, "marketplaceIds": [US]} for i in issues]}, rate_limit="5.0")


ERROR_8541 = {"code": "8541", "message": "conflicts with the Amazon catalog", "severity": "ERROR"}
NOT_FOUND = Answer(404, body={"errors": [{"code": "NOT_FOUND", "message": "SKU not found"}]}, rate_limit="5.0")


def make(script=(), policy=None, sellers=("S1",)):
    clock = FakeClock()
    transport = ScriptedTransport(clock, script, latency_s=0.01)
    accounts = Accounts({s: Account(s, "app", "secret", f"Atzr|{s}") for s in sellers})
    wall = [int(T0.timestamp() * 1000)]
    start = clock.now

    def wall_ms():  # wall clock moves with the fake clock
        return wall[0] + int((clock.now - start) * 1000)

    ports = SpApiPorts(accounts=accounts, transport=transport, endpoints=Endpoints("http://prod", "http://sandbox"),
                       clock=clock, sleep=clock.sleep)
    reconciler = Reconciler(ports, policy=policy or ReconcilePolicy(first_look_s=2, max_interval_s=30, time_limit_s=300),
                            wall_ms=wall_ms)
    return reconciler, transport, clock


def run(coroutine):
    return asyncio.run(coroutine)


def test_an_accepted_listing_goes_live_once_amazon_shows_it_discoverable():
    reconciler, transport, clock = make([NOT_FOUND, listing("SKU-1"), listing("SKU-1", ["DISCOVERABLE"])])
    seen = run(reconciler.observe(completed()))
    assert (seen.state, seen.status, seen.ended_by, seen.looks) == ("live", "finished", "poll", 3)
    assert seen.amazon_statuses == ["DISCOVERABLE"] and seen.request_id == "req-3"
    assert all("getListingsItem" not in c[0] for c in transport.calls)  # a GET of the listing's own path
    assert transport.calls[0][0] == "/listings/2021-08-01/items/S1/SKU-1"
    # looks back off: 2 s after the acceptance, then 1-2 s, then 2-4 s later
    first, second, third = (c[1] for c in transport.calls)
    assert first >= 1002 and 1 <= second - first <= 2.1 and 2 <= third - second <= 4.1


def test_an_issue_found_after_acceptance_is_an_error_with_the_request_id_of_that_get():
    reconciler, _, _ = make([listing("SKU-1"), listing("SKU-1", [], [ERROR_8541])])
    seen = run(reconciler.observe(completed()))
    assert (seen.state, seen.status) == ("error", "error")
    assert (seen.error_code, seen.error_message) == ("8541", "conflicts with the Amazon catalog")
    assert seen.request_id == "req-2"  # the GET that found it, not the PUT
    event = observed_event(completed(), seen)
    assert event["request_id"] == "req-2" and event["submission_request_id"] == "put-SKU-1"
    assert event["listing_state"] == "error" and event["status"] == "error" and event["source_event_id"] == "sc-SKU-1"


def test_the_time_limit_leaves_the_item_accepted_awaiting_amazon_with_a_note():
    reconciler, transport, clock = make([listing("SKU-1")] * 100)
    seen = run(reconciler.observe(completed()))
    assert (seen.state, seen.status, seen.ended_by) == ("awaiting", "finished", "time_limit")
    assert "awaiting Amazon" in seen.note and "300 s" in seen.note
    assert clock.now - 1000 <= 300 + 30 + 1  # stopped at the limit (one back-off interval late at most)
    assert 5 <= seen.looks == len(transport.calls) <= 20  # backed off to one look per 15-30 s


def test_the_limit_counts_from_the_acceptance_and_older_acceptances_are_not_looked_at():
    reconciler, transport, _ = make([listing("SKU-1")] * 100)
    late = run(reconciler.observe(completed(event_time=datetime(2026, 12, 7, 11, 56, tzinfo=UTC))))
    assert (late.state, late.ended_by) == ("awaiting", "time_limit") and 1 <= late.looks <= 8  # 60 s were left
    assert run(reconciler.observe(completed(event_time=datetime(2026, 12, 7, 11, 0, tzinfo=UTC)))) is None
    assert len(transport.calls) == late.looks


def test_a_sellers_gets_stay_within_the_get_plan_of_5_per_second_burst_10():
    skus = [f"SKU-{n}" for n in range(60)]
    reconciler, transport, clock = make(policy=ReconcilePolicy(first_look_s=0, max_interval_s=1, time_limit_s=600))

    async def answer_own_sku(connection, account, base_url, call):
        transport.calls.append((call.path, clock.now, 1))
        await asyncio.sleep(0)
        return listing(call.path.rsplit("/", 1)[1], ["BUYABLE"])

    transport.send = answer_own_sku

    async def main():
        return await asyncio.gather(*(reconciler.observe(completed(s)) for s in skus))

    seen = run(main())
    assert {s.state for s in seen} == {"live"}
    times = sorted(c[1] for c in transport.calls)
    assert len(times) == 60
    for k, t in enumerate(times):  # never more than the burst plus 5 per second since the first call
        assert k + 1 <= 10 + (t - times[0]) * 5 + 1e-6


def test_a_notification_makes_the_look_happen_at_once():
    reconciler, transport, clock = make([listing("SKU-1"), listing("SKU-1", ["BUYABLE", "DISCOVERABLE"])],
                                        policy=ReconcilePolicy(first_look_s=60, max_interval_s=600, time_limit_s=3600))

    async def main():
        watching = asyncio.ensure_future(reconciler.observe(completed()))
        while not transport.calls:  # the first look, 60 s after the acceptance
            await asyncio.sleep(0)
        await asyncio.sleep(0)
        looked_at = clock.now
        assert reconciler.notified("S1", US, "SKU-1") == 1
        return await watching, looked_at

    seen, looked_at = run(main())
    assert (seen.state, seen.ended_by, seen.looks) == ("live", "notification", 2)
    assert transport.calls[1][1] - transport.calls[0][1] < 60  # not the 30-60 s back-off
    assert reconciler.watching == 0


def test_the_static_sandbox_cannot_tell_and_says_so():
    sandbox_example = Answer(200, body={"sku": "GM-ZDPI-9B4E", "summaries": [], "issues": [ERROR_8541]})
    reconciler, transport, _ = make([sandbox_example])
    seen = run(reconciler.observe(completed(mode="test")))
    assert (seen.state, seen.status, seen.ended_by, seen.looks) == ("awaiting", "finished", "sandbox", 1)
    assert "static example" in seen.note


def test_a_newer_submission_ends_the_older_observation_without_an_event():
    reconciler, transport, _ = make([listing("SKU-1")] * 10)

    async def main():
        older = asyncio.ensure_future(reconciler.observe(completed()))
        while not transport.calls:
            await asyncio.sleep(0)
        reconciler.supersede(completed(event_id="sc-2", event_time=datetime(2026, 12, 7, 12, 5, tzinfo=UTC)))
        return await older

    assert run(main()) is None


def test_only_accepted_upserts_of_runs_that_persist_are_looked_at():
    assert wants(completed()) and wants(completed(mode="test"))
    assert not wants(completed(mode="preview", outcome="valid"))
    assert not wants(completed(outcome="invalid"))
    assert not wants(completed(outcome="unchanged"))
    assert not wants(completed(operation="delete", outcome="deleted"))
    assert not wants(completed(item_type="category", outcome="not_sent"))


def test_a_notification_that_comes_before_its_acceptance_is_read_still_ends_the_wait():
    reconciler, transport, clock = make([listing("SKU-1", ["BUYABLE"])],
                                        policy=ReconcilePolicy(first_look_s=60, max_interval_s=600, time_limit_s=3600))
    assert reconciler.notified("S1", US, "SKU-1") == 0  # nobody watching yet: remembered
    started = clock.now
    seen = run(reconciler.observe(completed()))
    assert (seen.state, seen.ended_by, seen.looks) == ("live", "notification", 1)
    assert transport.calls[0][1] - started < 1  # not 60 s later
    # ...once: a later acceptance of the SKU waits for its own first look again.
    transport.script = [listing("SKU-1", ["BUYABLE"])]
    later = datetime.fromtimestamp(reconciler._wall_ms() / 1000, UTC)
    started = clock.now
    again = run(reconciler.observe(completed(event_id="sc-2", event_time=later)))
    assert (again.ended_by, transport.calls[1][1] - started) == ("poll", 60)
