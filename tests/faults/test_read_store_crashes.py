"""Issue 20, item 1: the read store crashes mid-run and nothing is lost.

The recorder runs as its own process over the session's broker while a 2,000-item run's events are
produced straight to its topics in five rounds: one before the first crash, one during each outage.
PostgreSQL (a private server) is crashed four times (`pg_ctl stop -m immediate`) as soon as the
recorder has committed new events, and started again three seconds later; SQLite's recorder is
SIGKILLed four times the same way and started again. Afterwards the projection must equal one a
fresh recorder replays from the topics: every item, every count, every history row, none pending.

The lossy case runs PostgreSQL with asynchronous commit, so a crash loses commits the recorder had
been told were durable (as a restore or a failover to a replica behind would): the recorder must
read their events again. Before it sought back to the stored offsets after a store failure, those
events were skipped for good and their items stayed pending.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from functools import partial

import httpx
import pytest

from catalog_sync.demo import create_stack_topics
from catalog_sync.recorder.api import create_app
from catalog_sync.recorder.read_model import MAX_PAGE, ItemFilters, ReadModel
from catalog_sync.recorder.service import build_worker
from catalog_sync.recorder.settings import RecorderSettings
from catalog_sync.recorder.store import ReadStore
from catalog_sync.runtime.bus import BusProducer
from catalog_sync.runtime.codec import AvroCodec
from catalog_sync.runtime.consumer_loop import StopSignal
from catalog_sync.runtime.processes import ServiceProcess
from tests.support.background import running_in_thread, serving, wait_until
from tests.support.postgres_server import private_postgres
from tests.support.sample_events import TOPIC_OF, SampleRun, just_now

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ITEMS = 2_000
CHUNK = 50  # items whose change is produced at once; their outcomes follow two chunks later
CRASHES = 4
DOWN_S = 3.0  # how long the store stays down each time ("restarted a few seconds later")
UNAVAILABLE = "the read store is unavailable; retry shortly"


def fate(i: int) -> str:
    return {3: "invalid_locally", 7: "invalid_at_amazon"}.get(i % 10, "accepted")


def run_events(run: SampleRun) -> list[list[tuple[str, dict]]]:
    """The run as chunks of events in the order a pipeline emits them."""
    refs = [f"CR-{i:05d}" for i in range(ITEMS)]

    def outcome(i: int) -> tuple[str, dict]:
        if fate(i) == "invalid_locally":
            return run.validation_failed(refs[i])
        return run.submitted(refs[i], accepted=fate(i) == "accepted")

    starts = list(range(0, ITEMS, CHUNK))
    chunks: list[list] = [[run.opened()]]
    for n, start in enumerate(starts):
        chunk = [run.changed(refs[i]) for i in range(start, start + CHUNK)]
        if n >= 2:
            chunk += [outcome(i) for i in range(starts[n - 2], starts[n - 2] + CHUNK)]
        chunks.append(chunk)
    for start in starts[-2:]:
        chunks.append([outcome(i) for i in range(start, start + CHUNK)])
    chunks[-1].append(run.closed(ITEMS))
    return chunks


def key_of(event: dict) -> str:
    if "reference" in event:
        return f"{event.get('seller_id') or ''}|{event['marketplace_id']}|{event['reference']}"
    return event["run_id"]


class Rounds:
    """Produces the run's chunks in CRASHES + 1 rounds: the first before any crash, each other one
    while the store (or the recorder) is down, so events arrive during every outage and every
    crash finds new events to apply."""

    def __init__(self, settings, chunks):
        self.settings = settings
        size = -(-len(chunks) // (CRASHES + 1))
        self.left = [chunks[i:i + size] for i in range(0, len(chunks), size)]
        self.codec, self.producer = AvroCodec(), BusProducer(settings)

    def publish_next(self) -> None:
        for kind, event in (e for chunk in self.left.pop(0) for e in chunk):
            self.producer.send(self.settings.topic(TOPIC_OF[kind]), key_of(event), self.codec.encode(kind, event))
        self.producer.flush()

    def __enter__(self) -> Rounds:
        return self

    def __exit__(self, *exc) -> None:
        self.producer.close()


def projection(url: str, run_id: str) -> dict:
    """Everything a user sees of the run, straight from a read store."""
    store = ReadStore(url)
    try:
        model = ReadModel(store)
        run = model.run(run_id)  # before the items: a finished run's items are read after it finished
        items, cursor = {}, None
        while True:
            page = model.items(ItemFilters(run_id=run_id, limit=MAX_PAGE, cursor=cursor))
            for i in page["items"]:
                items[i["reference"]] = (i["status"], i["request_id"], i["submission_id"],
                                         (i["error"] or {}).get("type"), (i["error"] or {}).get("code"))
            cursor = page["next_cursor"]
            if not cursor:
                break
        with store.read() as s:
            history = Counter(dict(s.execute("SELECT event_type, COUNT(*) FROM item_events GROUP BY event_type")))
        return {"items": items, "counts": run["counts"], "status": run["status"], "history": history}
    finally:
        store.close()


def answers(url: str) -> bool:
    return httpx.get(url, timeout=30).status_code == 200


def run_finished(url: str, run_id: str, seen: dict | None = None):
    """The projection once the run is complete in it; `seen` keeps the last counts for the failure."""
    try:
        found = projection(url, run_id)
    except Exception:  # not migrated yet, or down
        return None
    if seen is not None:
        seen.update(found["counts"])
    done = (found["counts"]["total"] == ITEMS and found["counts"]["pending"] == 0
            and found["status"] != "in_progress" and len(found["items"]) == ITEMS)
    return found if done else None


def wait_for_run(url: str, run_id: str, where: str) -> dict:
    seen: dict = {}
    try:
        return wait_until(lambda: run_finished(url, run_id, seen), timeout_s=180, interval_s=0.5,
                          message=f"the run complete in {where}")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; last counts {seen}") from None


def replayed(runtime_settings, tmp_path, run_id: str) -> dict:
    """A fresh recorder (new consumer group, new SQLite store) rebuilds the projection from the topics."""
    url = f"sqlite:///{tmp_path / 'replayed.db'}"
    store = ReadStore(url)
    store.migrate()
    stop = StopSignal()
    settings = runtime_settings("recorder", group_id=f"replay-{uuid.uuid4().hex[:8]}")
    worker = build_worker(settings, RecorderSettings(read_store_url=url), store, stop=stop)
    try:
        with running_in_thread(worker.run, stop, "replaying recorder"):
            return wait_for_run(url, run_id, "the replayed projection")
    finally:
        store.close()


def expected_counts() -> dict:
    errors = sum(1 for i in range(ITEMS) if fate(i) != "accepted")
    return {"total": ITEMS, "pending": 0, "error": errors, "finished": ITEMS - errors}


def start_recorder(kafka_env, tmp_path, url: str, name: str = "recorder") -> ServiceProcess:
    env = {**kafka_env, "READ_STORE_URL": url, "KAFKA_GROUP_ID": "recorder"}
    create_stack_topics(env)  # workers create no topics: they refuse to start without theirs
    process = ServiceProcess(name, ["recorder"], env, tmp_path / "logs").start()
    return process


def recorder_running(process: ServiceProcess) -> None:
    if not process.running:
        raise RuntimeError(f"the recorder exited with {process.process.returncode}:\n{process.log_text()[-3000:]}")


def advanced(url: str, past: int) -> int | None:
    """The recorder's stored position once it is beyond `past`."""
    position = stored_position(url)
    return position if position > past else None


def stored_position(url: str) -> int:
    """Sum of the recorder's stored next offsets (0 while the store cannot answer)."""
    store = ReadStore(url, pool_size=1)
    try:
        return sum(store.offsets("recorder").values()) if store.schema_versions() else 0
    except Exception:
        return 0
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.parametrize("commit", ["durable", "lossy"])
def test_postgres_crashes_mid_run_lose_nothing_and_the_api_answers_503_meanwhile(commit, kafka_env, tmp_path,
                                                                               runtime_settings):
    # lossy: asynchronous commit, and the WAL writer waits long, so a crash loses acknowledged commits.
    server_settings = {"synchronous_commit": "off", "wal_writer_delay": "'5s'"} if commit == "lossy" else {}
    run = SampleRun(start=just_now())
    chunks = run_events(run)
    with private_postgres(server_settings) as pg:
        recorder = start_recorder(kafka_env, tmp_path, pg.url)
        api_store = ReadStore(pg.url)
        try:
            recorder.wait_for_log("worker started", timeout_s=60)
            with serving(create_app(ReadModel(api_store))) as api, Rounds(runtime_settings("publisher"), chunks) as rounds:
                answers_while_down: list[tuple[int, str]] = []
                rounds.publish_next()
                last = 0
                for _ in range(CRASHES):
                    # Crash while the recorder is applying: it committed past the last crash's position.
                    last = wait_until(partial(advanced, pg.url, last), timeout_s=90, interval_s=0.05,
                                      message="the recorder applying events")
                    recorder_running(recorder)
                    pg.crash()
                    down_until = time.monotonic() + DOWN_S
                    response = httpx.get(f"{api}/api/runs", timeout=30)
                    answers_while_down.append((response.status_code, response.json().get("detail", "")))
                    rounds.publish_next()  # events keep arriving while the store is down
                    time.sleep(max(0.0, down_until - time.monotonic()))  # the outage itself, not a wait on a result
                    pg.start()
                    # The API recovers without a restart.
                    wait_until(partial(answers, f"{api}/api/runs"), timeout_s=30, message="the API answering again")
                assert not rounds.left
                recorded = wait_for_run(pg.url, run.run_id, "the crashed store")
                recorder_running(recorder)
        finally:
            recorder.stop()
            api_store.close()
        log = recorder.log_text()

    assert pg.crashes == CRASHES
    assert answers_while_down == [(503, UNAVAILABLE)] * CRASHES
    assert recorded["counts"] == expected_counts()
    replay = replayed(runtime_settings, tmp_path, run.run_id)
    assert recorded["items"] == replay["items"]
    assert recorded["counts"] == replay["counts"] and recorded["status"] == replay["status"] == "finished_with_errors"
    assert recorded["history"] == replay["history"] == Counter(
        {"CatalogItemChanged": ITEMS, "SubmissionCompleted": ITEMS - ITEMS // 10, "ValidationFailed": ITEMS // 10})
    assert log.count("repositioning every assigned partition") >= CRASHES
    lost = log.count("the read store lost applied events")
    if commit == "durable":
        assert lost == 0, "a commit PostgreSQL acknowledged did not survive the crash"
    else:  # every crash so far lost some; one of four is enough to show the case was tested
        assert lost >= 1, "no crash lost an acknowledged commit: the lossy case tested nothing"
    print(f"{commit}: {CRASHES} crashes, the store lost applied events {lost} time(s); "
          f"{log.count('repositioning every assigned partition')} repositionings")


def test_sqlite_recorder_killed_mid_commit_loses_nothing(kafka_env, tmp_path, runtime_settings):
    url = f"sqlite:///{tmp_path / 'read.db'}"
    run = SampleRun(start=just_now())
    chunks = run_events(run)
    kills = 0
    recorder = start_recorder(kafka_env, tmp_path, url)
    try:
        recorder.wait_for_log("worker started", timeout_s=60)
        with Rounds(runtime_settings("publisher"), chunks) as rounds:
            rounds.publish_next()
            last = 0
            for n in range(CRASHES):
                last = wait_until(partial(advanced, url, last), timeout_s=90, interval_s=0.02,
                                  message="the recorder applying events")
                recorder_running(recorder)
                recorder.kill()  # SIGKILL while it is applying a batch: mid-transaction or mid-commit
                kills += 1
                rounds.publish_next()
                recorder = start_recorder(kafka_env, tmp_path, url, name=f"recorder-{n + 1}")
                recorder.wait_for_log("worker started", timeout_s=60)
            assert not rounds.left
            recorded = wait_for_run(url, run.run_id, "the killed recorder's store")
            recorder_running(recorder)
    finally:
        recorder.stop()

    assert kills == CRASHES
    assert recorded["counts"] == expected_counts()
    replay = replayed(runtime_settings, tmp_path, run.run_id)
    assert recorded["items"] == replay["items"]
    assert recorded["counts"] == replay["counts"] and recorded["status"] == replay["status"] == "finished_with_errors"
    assert recorded["history"] == replay["history"]
