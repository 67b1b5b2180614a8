"""The read API over real HTTP (uvicorn) on SQLite and PostgreSQL: §5 shapes, filters, auth."""

from __future__ import annotations

import httpx
import pytest

from catalog_sync.recorder.api import create_app
from catalog_sync.recorder.read_model import ReadModel
from tests.support.background import serving
from tests.support.sample_events import Partitions, SampleRun
from tests.support.stores import STORE_KINDS, migrated_store

RUN_KEYS = {"run_id", "mode", "endpoint", "status", "started_at", "finished_at", "counts"}
ITEM_KEYS = {"reference", "item_type", "seller_id", "marketplace_id", "status", "run_id", "synced_at", "endpoint",
             "request_id", "submission_id", "error", "issues"}




@pytest.fixture(params=STORE_KINDS)
def store(request, tmp_path):
    with migrated_store(request.param, tmp_path) as opened:
        yield opened


@pytest.fixture
def seeded(store):
    run = SampleRun()
    events = [run.opened()]
    events += [run.changed(f"HB-{i:02d}", item_type="variant" if i % 5 == 0 else "product") for i in range(30)]
    events += [run.submitted(f"HB-{i:02d}", accepted=i % 3 != 0, item_type="variant" if i % 5 == 0 else "product")
               for i in range(30)]
    events += [run.closed(30)]
    store.apply("recorder", Partitions().messages(events))
    return store, run


def test_activity_runs_and_items_have_the_documented_shapes(seeded):
    store, run = seeded
    with serving(create_app(ReadModel(store))) as url:
        activity = httpx.get(f"{url}/api/activity").json()
        runs = httpx.get(f"{url}/api/runs", params={"limit": 5}).json()
        items = httpx.get(f"{url}/api/items").json()
        errors = httpx.get(f"{url}/api/items", params={"status": "error", "type": "product"}).json()
    assert set(activity) >= {"in_progress", "current_run", "last_run", "next_run_at"}
    assert activity["last_run"]["run_id"] == run.run_id and activity["in_progress"] is False
    assert set(runs["runs"][0]) >= RUN_KEYS
    assert runs["runs"][0]["status"] == "finished_with_errors"
    assert runs["runs"][0]["counts"] == {"total": 30, "pending": 0, "error": 10, "finished": 20}
    assert set(items) >= {"summary", "items", "next_cursor"}
    assert len(items["items"]) == 25 and items["next_cursor"]
    assert set(items["items"][0]) >= ITEM_KEYS
    assert items["summary"] == {"total": 30, "pending": 0, "error": 10, "finished": 20}
    assert errors["summary"]["total"] == 8 and all(i["error"]["type"] == "amazon_response" for i in errors["items"])
    assert all(i["request_id"] for i in errors["items"])


def test_cursor_pagination_walks_the_whole_set(seeded):
    store, _ = seeded
    seen = []
    with serving(create_app(ReadModel(store))) as url:
        params = {"limit": 7}
        while True:
            page = httpx.get(f"{url}/api/items", params=params).json()
            seen += [i["reference"] for i in page["items"]]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    assert sorted(seen) == [f"HB-{i:02d}" for i in range(30)]


def test_item_with_history_and_support_case(seeded):
    store, _ = seeded
    with serving(create_app(ReadModel(store))) as url:
        item = httpx.get(f"{url}/api/items/HB-03", params={"marketplace_id": "ATVPDKIKX0DER"}).json()
        missing = httpx.get(f"{url}/api/items/NOPE")
        case = httpx.get(f"{url}/api/support-case", params={"reference": "HB-03",
                                                            "marketplace_id": "ATVPDKIKX0DER"}).json()
        no_args = httpx.get(f"{url}/api/support-case")
    assert item["status"] == "error" and [h["event_type"] for h in item["history"]] == [
        "CatalogItemChanged", "SubmissionCompleted"]
    assert missing.status_code == 404
    assert case["country"] == "United States" and case["operation"] == "putListingsItem"
    assert case["request_ids"] == [item["request_id"]]
    assert no_args.status_code == 400


@pytest.mark.parametrize("params", [{"status": "nope"}, {"type": "book"}, {"since": "soon"}, {"limit": 0},
                                    {"limit": "many"}, {"cursor": "%%%"}])
def test_bad_parameters_answer_400_with_one_text(seeded, params):
    """FastAPI's own validation (limit=0, limit=many) answers like the read model's checks: 400 and
    {"detail": "<text>"}, never a 422 with a list."""
    store, _ = seeded
    with serving(create_app(ReadModel(store))) as url:
        response = httpx.get(f"{url}/api/items", params=params)
    assert response.status_code == 400
    assert list(response.json()) == ["detail"] and isinstance(response.json()["detail"], str)
    if "limit" in params:
        assert response.json()["detail"].startswith("limit: ")


def test_every_error_has_the_same_shape(seeded):
    store, _ = seeded
    with serving(create_app(ReadModel(store))) as url:
        answers = {
            "unknown run": httpx.get(f"{url}/api/items", params={"run_id": "run-nope"}),
            "unknown run (csv)": httpx.get(f"{url}/api/items.csv", params={"run_id": "run-nope"}),
            "unknown run by id": httpx.get(f"{url}/api/runs/run-nope"),
            "unknown item": httpx.get(f"{url}/api/items/NOPE"),
            "unknown path": httpx.get(f"{url}/api/nothing-here"),
            "runs limit": httpx.get(f"{url}/api/runs", params={"limit": 0}),
            "support case without selection": httpx.get(f"{url}/api/support-case"),
        }
    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {"unknown run": 404, "unknown run (csv)": 404, "unknown run by id": 404, "unknown item": 404,
                        "unknown path": 404, "runs limit": 400, "support case without selection": 400}
    for name, response in answers.items():
        body = response.json()
        assert list(body) == ["detail"] and isinstance(body["detail"], str) and body["detail"], name
    assert "run-nope" in answers["unknown run"].json()["detail"]


def test_a_run_by_id_says_what_started_it_and_how_long_it_took(seeded):
    store, run = seeded
    with serving(create_app(ReadModel(store))) as url:
        found = httpx.get(f"{url}/api/runs/{run.run_id}").json()
    assert found["run_id"] == run.run_id and found["status"] == "finished_with_errors"
    assert found["trigger"] == "publish" and found["retry_of"] is None and found["source"] == "catalog.jsonl"
    assert found["duration_s"] == pytest.approx(0.061)  # 62 events 1 ms apart: opened to the last outcome


def test_bearer_token_guards_the_api_but_not_the_page(seeded):
    store, _ = seeded
    with serving(create_app(ReadModel(store), api_token="s3cret")) as url:
        assert httpx.get(f"{url}/api/activity").status_code == 401
        assert httpx.get(f"{url}/api/items", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = httpx.get(f"{url}/api/items", headers={"Authorization": "Bearer s3cret"})
        page = httpx.get(f"{url}/")
        docs = httpx.get(f"{url}/openapi.json").json()
    assert ok.status_code == 200
    assert page.status_code == 200 and "Content-Security-Policy" in page.headers
    assert {"/api/activity", "/api/runs", "/api/items", "/api/items/{reference}", "/api/support-case"} <= set(docs["paths"])


def test_the_page_and_its_assets_are_served(seeded):
    store, _ = seeded
    with serving(create_app(ReadModel(store))) as url:
        page = httpx.get(f"{url}/")
        script = httpx.get(f"{url}/static/app.js")
        docs = httpx.get(f"{url}/docs")
    assert "<title>catalog-sync" in page.text
    assert script.status_code == 200 and "textContent" in script.text
    assert docs.status_code == 200


def test_metrics_count_requests_by_route_template_and_report_the_store(seeded):
    """Prometheus scrapes the API without the token; a reference never becomes a label value."""
    store, _ = seeded
    with serving(create_app(ReadModel(store), api_token="s3cret")) as url:
        auth = {"Authorization": "Bearer s3cret"}
        assert httpx.get(f"{url}/api/items/HB-01", headers=auth).status_code == 200
        assert httpx.get(f"{url}/api/items", params={"reference": "HB-0"}, headers=auth).status_code == 200
        assert httpx.get(f"{url}/api/items").status_code == 401
        metrics = httpx.get(f"{url}/metrics")
    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert 'api_requests_total{route="/api/items/{reference:path}",status="200"} 1.0' in text
    assert 'api_requests_total{route="/api/items",status="401"} 1.0' in text
    assert 'api_request_duration_seconds_count{route="/api/items"} 2.0' in text
    assert "HB-01" not in text
    # The seeded run: 30 items, 20 accepted and 10 invalid, closed: nothing pending, finished with errors.
    assert "recorder_items_pending 0.0" in text
    assert 'recorder_runs{status="finished_with_errors"} 1.0' in text


def test_items_csv_streams_every_matching_item_with_the_same_filters(store):
    import csv
    import io

    run = SampleRun()
    events = [run.opened()] + [run.changed(f"HB-{i:04d}") for i in range(1_200)]
    events += [run.submitted(f"HB-{i:04d}", accepted=i % 4 != 0) for i in range(1_200)]
    events += [run.changed("=HYPERLINK(\"http://evil\")"), run.changed("Ünïcode, \"quoted\"\nline"), run.closed(1_202)]
    store.apply("recorder", Partitions().messages(events))
    with serving(create_app(ReadModel(store))) as url:
        page = httpx.get(f"{url}/api/items", params={"status": "error"}).json()
        with httpx.stream("GET", f"{url}/api/items.csv", params={"status": "error"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/csv")
            assert "attachment" in response.headers["content-disposition"]
            errors = list(csv.DictReader(io.StringIO(response.read().decode())))
        everything = list(csv.DictReader(io.StringIO(httpx.get(f"{url}/api/items.csv").text)))
        searched = list(csv.DictReader(io.StringIO(
            httpx.get(f"{url}/api/items.csv", params={"reference": "ünï"}).text)))
    assert len(errors) == page["summary"]["total"] == 300 > len(page["items"])  # all rows, not one page
    assert {r["status"] for r in errors} == {"error"} and all(r["request_id"] and r["error_code"] for r in errors)
    assert errors[0]["reference"] == page["items"][0]["reference"]  # the table's order
    assert len(everything) == 1_202
    assert [r["reference"] for r in searched] == ["Ünïcode, \"quoted\"\nline"]
    hostile = next(r for r in everything if "HYPERLINK" in r["reference"])
    assert hostile["reference"].startswith("'=")  # a spreadsheet shows it as text, never runs it


def test_a_scheduled_run_that_never_started_is_reported_missed_not_next(store):
    from datetime import timedelta

    run = SampleRun()
    announced = run.start + timedelta(minutes=15)
    store.apply("recorder", Partitions().messages([run.opened(next_run_at=announced), run.changed("HB-1"),
                                                   run.submitted("HB-1"), run.closed(1)]))

    def activity_at(seconds_after_announced: float) -> dict:
        clock = announced.timestamp() + seconds_after_announced
        return ReadModel(store, clock=lambda: clock).activity()

    before, just_due, stopped = activity_at(-60), activity_at(30), activity_at(600)
    assert before["next_run_at"] == "2026-11-27T10:15:00.000Z" and before["missed_run_at"] is None
    assert just_due["next_run_at"] == "2026-11-27T10:15:00.000Z"  # its opening may still be on its way
    assert stopped["next_run_at"] is None and stopped["missed_run_at"] == "2026-11-27T10:15:00.000Z"
    assert before["last_run"]["trigger"] == "schedule"
