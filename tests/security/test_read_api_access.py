"""Who can read the API: the `api` command listens on loopback unless told otherwise; with
API_TOKEN every /api/* answer needs `Authorization: Bearer <token>` (nothing else will do), while
the page and its assets load without it, ask for the token, and then work."""

from __future__ import annotations

import os
import re

import httpx
import pytest

from catalog_sync.recorder.api import create_app
from catalog_sync.recorder.read_model import ReadModel
from catalog_sync.recorder.settings import RecorderSettings
from catalog_sync.recorder.store import ReadStore
from catalog_sync.runtime.processes import ServiceProcess
from tests.support.background import serving
from tests.support.requirements import require
from tests.support.sample_events import Partitions, SampleRun

TOKEN = "tok-3d9f0b7c5a1e"
GUARDED = ["/api/activity", "/api/runs", "/api/items", "/api/items/HB-01", "/api/support-case?reference=HB-01"]
OPEN = ["/", "/static/app.js", "/static/style.css", "/healthz", "/metrics", "/docs", "/openapi.json"]
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def seeded_store(path) -> ReadStore:
    store = ReadStore(f"sqlite:///{path}")
    store.migrate()
    run = SampleRun()
    events = [run.opened()] + [run.changed(f"HB-{i:02d}") for i in range(3)]
    events += [run.submitted(f"HB-{i:02d}") for i in range(3)] + [run.closed(3)]
    store.apply("recorder", Partitions().messages(events))
    return store


@pytest.fixture(scope="module")
def api_process(tmp_path_factory):
    """`catalog-sync api` as a user starts it: no API_HOST, a free port, API_TOKEN set."""
    data = tmp_path_factory.mktemp("api")
    seeded_store(data / "read.db").close()
    env = {"READ_STORE_URL": f"sqlite:///{data / 'read.db'}", "API_TOKEN": TOKEN, "API_PORT": "0",
           "METRICS_PORT": "off", "LOG_FORMAT": "json", "API_HOST": ""}  # "": unset, whatever the shell says
    process = ServiceProcess("api", ["api"], env, data / "logs")
    process.start()
    try:
        process.wait_for_log("read API and web page on http://", timeout_s=60)
        host, port = re.search(r"read API and web page on http://([^:/]+):(\d+)/", process.log_text()).groups()
        yield host, f"http://127.0.0.1:{port}", process
    finally:
        process.stop()


def test_the_api_binds_loopback_by_default(api_process):
    host, _, _ = api_process
    assert RecorderSettings.from_env({}).api_host == "127.0.0.1"
    assert host == "127.0.0.1"


@pytest.mark.parametrize("path", GUARDED)
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Bearer wrong-token"}, {"Authorization": f"Basic {TOKEN}"}, {"Authorization": TOKEN},
    {"Authorization": f"Bearer {TOKEN}x"}, {"Authorization": f"Bearer {TOKEN[:-1]}"}, {"Authorization": "Bearer"},
    {"Authorization": f"Token {TOKEN}"}, {"X-API-Token": TOKEN}, {"Cookie": f"token={TOKEN}"},
])
def test_every_api_path_refuses_anything_but_the_bearer_token(api_process, path, headers):
    _, url, _ = api_process
    response = httpx.get(f"{url}{path}", headers=headers, timeout=10)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "HB-01" not in response.text and "wrong-token" not in response.text


@pytest.mark.parametrize("path", GUARDED)
def test_a_token_in_the_query_string_is_not_accepted(api_process, path):
    _, url, _ = api_process
    sep = "&" if "?" in path else "?"
    for name in ("token", "api_token", "access_token"):
        assert httpx.get(f"{url}{path}{sep}{name}={TOKEN}", timeout=10).status_code == 401


@pytest.mark.parametrize("path", GUARDED)
def test_the_bearer_token_opens_every_api_path(api_process, path):
    _, url, _ = api_process
    for scheme in ("Bearer", "bearer"):
        response = httpx.get(f"{url}{path}", headers={"Authorization": f"{scheme} {TOKEN}"}, timeout=10)
        assert response.status_code == 200, response.text[:300]


@pytest.mark.parametrize("path", OPEN)
def test_the_page_its_assets_and_probes_load_without_the_token_and_hold_no_items(api_process, path):
    _, url, process = api_process
    response = httpx.get(f"{url}{path}", timeout=10)
    assert response.status_code == 200
    assert "HB-0" not in response.text  # the data itself only comes from the guarded API
    assert TOKEN not in response.text
    assert TOKEN not in process.log_text()



@pytest.mark.browser
def test_the_page_asks_for_the_token_then_shows_the_items(tmp_path):
    require(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import expect, sync_playwright

    store = seeded_store(tmp_path / "read.db")
    with serving(create_app(ReadModel(store), api_token=TOKEN)) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--headless", "--disable-gpu", "--no-first-run"])
        try:
            # The page's own Content-Security-Policy stays on: its script must load under it.
            page = browser.new_context().new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(url)
            expect(page.locator("#token-panel")).to_be_visible()
            assert page.locator("[data-testid=item-row]").count() == 0

            page.fill("#token-input", "not-the-token")
            page.click("#token-form button[type=submit]")
            expect(page.locator("#token-panel")).to_be_visible()
            assert page.locator("[data-testid=item-row]").count() == 0

            page.fill("#token-input", TOKEN)
            page.click("#token-form button[type=submit]")
            expect(page.locator("[data-testid=item-row]")).to_have_count(3)
            expect(page.locator("#token-panel")).to_be_hidden()
            # The token lives for the browser tab only: a reload keeps working without asking again.
            page.reload()
            expect(page.locator("[data-testid=item-row]")).to_have_count(3)
            expect(page.locator("#token-panel")).to_be_hidden()
            assert page.evaluate("window.localStorage.length") == 0
            assert errors == []
        finally:
            browser.close()
            store.close()
