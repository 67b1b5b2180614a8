"""The web page in real headless Chromium against the real API: filters, view more, error
details, and escaping of whatever the catalog or Amazon sends."""

from __future__ import annotations

import os

import pytest

from catalog_sync.recorder.api import create_app
from catalog_sync.recorder.read_model import ReadModel
from catalog_sync.recorder.store import ReadStore
from tests.support.background import serving
from tests.support.requirements import require
from tests.support.sample_events import Partitions, SampleRun, just_now

pytestmark = pytest.mark.browser
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SCRIPT_REFERENCE = "<script>window.__pwned=1</script>"
HOSTILE_MESSAGE = "Value <b>bold</b> <img src=x onerror=\"window.__pwned=2\"> is not allowed"



@pytest.fixture(scope="module")
def site(tmp_path_factory):
    store = ReadStore(f"sqlite:///{tmp_path_factory.mktemp('page') / 'read.db'}")
    store.migrate()
    run = SampleRun(start=just_now())
    events = [run.opened()]
    refs = [f"HB-{i:02d}" for i in range(30)] + [SCRIPT_REFERENCE, "CAT-HAIR"]
    for ref in refs:
        events.append(run.changed(ref, item_type="category" if ref.startswith("CAT") else "product"))
    for i in range(0, 30, 2):
        events.append(run.submitted(f"HB-{i:02d}"))
    events.append(run.validation_failed("HB-01"))
    events.append(run.submitted("HB-03", accepted=False, issues=[{
        "code": "8541", "message": HOSTILE_MESSAGE, "severity": "ERROR",
        "attribute_names": ["item_name"], "categories": ["INVALID_ATTRIBUTE"]}], request_id="req-hb03-amazon"))
    events.append(run.submitted(SCRIPT_REFERENCE, accepted=False, issues=[{
        "code": "90220", "message": "<script>window.__pwned=3</script>", "severity": "ERROR",
        "attribute_names": ["brand"], "categories": []}]))
    events.append(run.closed(len(refs)))
    store.apply("recorder", Partitions().messages(events))
    with serving(create_app(ReadModel(store))) as url:
        yield url
    store.close()


@pytest.fixture(scope="module")
def browser():
    require(os.path.exists(CHROMIUM), f"Chromium not found at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, site):
    # Bypass the page's Content-Security-Policy (it forbids eval, which Playwright's waits use):
    # the escaping is then proven on its own, without CSP as a safety net.
    context = browser.new_context(bypass_csp=True)
    pg = context.new_page()
    dialogs = []
    pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    pg.goto(site)
    pg.wait_for_selector("[data-testid=item-row]")
    yield pg
    assert dialogs == [], f"a script from the data ran: {dialogs}"
    context.close()


def rows(page):
    return page.locator("[data-testid=item-row]")


def only_reference(page, reference: str) -> None:
    """Wait until the table shows exactly this one item (the old rows may still be there)."""
    from playwright.sync_api import expect

    expect(rows(page).locator("td.ref")).to_have_text([reference])


def test_activity_overview_and_first_25_rows(page):
    assert page.locator("#act-running").inner_text() == "yes"  # 14 items still pending
    current = page.locator("#act-current").inner_text()
    assert "in progress" in current and "32 items: 15 finished, 3 error, 14 pending" in current
    assert page.locator("#count-total").inner_text() == "32"
    assert rows(page).count() == 25
    assert "32 matching" in page.locator("[data-testid=items-summary]").inner_text()


def test_view_more_appends_the_next_page(page):
    page.click("#view-more")
    page.wait_for_function("document.querySelectorAll('[data-testid=item-row]').length === 32")
    assert page.locator("#view-more").is_hidden()
    references = rows(page).locator("td.ref").all_inner_texts()
    assert len(set(references)) == 32


def test_filters_by_status_type_and_reference(page):
    page.select_option("#f-status", "error")
    page.wait_for_function("document.querySelectorAll('[data-testid=item-row]').length === 3")
    assert set(rows(page).locator("td.status").all_inner_texts()) == {"error"}
    page.select_option("#f-status", "all")
    page.select_option("#f-type", "category")
    only_reference(page, "CAT-HAIR")
    page.select_option("#f-type", "")
    page.fill("#f-reference", "hb-2")
    page.wait_for_function("document.querySelectorAll('[data-testid=item-row]').length === 10")
    assert all(r.startswith("HB-2") for r in rows(page).locator("td.ref").all_inner_texts())
    page.fill("#f-reference", "")
    page.fill("#f-since", "2030-01-01T00:00:00")
    page.dispatch_event("#f-since", "change")
    page.wait_for_selector("#no-items:not([hidden])")


def test_a_late_answer_to_an_older_filter_never_replaces_the_newer_table(page):
    held = []  # the answer to the first filter is held back until the second one is on screen

    def hold_the_status_only_filter(route):
        if "type=" in route.request.url:
            route.continue_()
        else:
            held.append(route)

    page.route("**/api/items?*", hold_the_status_only_filter)
    # (predicate: the page's live refresh of a running run may be held and aborted too)
    with page.expect_event("requestfailed", timeout=10_000,
                           predicate=lambda request: "status=pending" in request.url) as aborted:
        page.select_option("#f-status", "pending")
        page.select_option("#f-type", "category")
    assert "status=pending" in aborted.value.url and "type=" not in aborted.value.url
    only_reference(page, "CAT-HAIR")
    for route in held:
        route.continue_()  # the browser already gave up on it: nothing may reach the table
    page.unroute("**/api/items?*")
    page.select_option("#f-type", "")
    page.wait_for_function("document.querySelectorAll('[data-testid=item-row]').length === 14")
    assert "14 matching" in page.locator("[data-testid=items-summary]").inner_text()


def test_error_details_show_type_code_message_attributes_request_id_and_endpoint(page):
    page.fill("#f-reference", "HB-03")
    only_reference(page, "HB-03")
    page.click("[data-testid=show-error]")
    details = page.locator("[data-testid=error-details]")
    text = details.inner_text()
    assert "Amazon response" in text and "8541" in text and "item_name" in text
    assert "req-hb03-amazon" in text and "test" in text
    assert HOSTILE_MESSAGE in text  # shown as text, not markup
    assert details.locator("b, img").count() == 0

    page.fill("#f-reference", "HB-01")
    only_reference(page, "HB-01")
    page.click("[data-testid=show-error]")
    text = page.locator("[data-testid=error-details]").inner_text()
    assert "Validation" in text and "schema.required" in text and "brand" in text and "item_name" in text


def test_markup_in_references_and_amazon_messages_is_shown_as_text(page):
    page.fill("#f-reference", "<script>")
    only_reference(page, SCRIPT_REFERENCE)
    page.click("[data-testid=show-error]")
    assert "<script>window.__pwned=3</script>" in page.locator("[data-testid=error-details]").inner_text()
    assert page.evaluate("window.__pwned") is None
    assert page.locator("main script").count() == 0


# -- runs, search across runs, support case, phone width, links, docs ---------------------------------
@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Three runs, the newest last: A (finished) synced HB-1001 and ÜBER-1; B was interrupted; C
    skipped HB-2000 as unchanged, has errors and announced a next run that never started."""
    from datetime import timedelta

    store = ReadStore(f"sqlite:///{tmp_path_factory.mktemp('history') / 'read.db'}")
    store.migrate()
    base = just_now() - timedelta(hours=3)
    a = SampleRun(run_id="run-a-finished", start=base)
    b = SampleRun(run_id="run-b-stalled", start=base + timedelta(hours=1))
    c = SampleRun(run_id="run-c-latest", start=base + timedelta(hours=2))
    partitions = Partitions()
    store.apply("recorder", partitions.messages([
        a.opened(), *[a.changed(r) for r in ("HB-1001", "ÜBER-1", "HB-2000")],
        a.submitted("HB-1001", request_id="req-a-1001"), a.submitted("ÜBER-1", request_id="req-a-uber"),
        a.submitted("HB-2000", request_id="req-a-2000"), a.closed(3)]))
    store.apply("recorder", partitions.messages([b.opened(), b.changed("HB-4000")]))
    store.apply("recorder", partitions.messages([
        c.opened(next_run_at=c.start + timedelta(minutes=15), source="retry of run-a-finished"),
        *[c.changed(r) for r in ("HB-2000", "HB-3000", "HB-3001", "SCR-1", "SCR-2")],
        c.unchanged("HB-2000"),
        c.submitted("HB-3000", accepted=False, request_id="11111111-2222-4333-8444-555555555555"),
        c.submitted("HB-3001", accepted=False, request_id="req-c-3001"),
        c.validation_failed("SCR-1"), c.submitted("SCR-2", request_id="req-c-scr2"), c.closed(5)]))
    with serving(create_app(ReadModel(store))) as url:
        yield url
    store.close()


def open_page(browser, url: str, **options):
    """A page at `url` once its table is drawn; CSP bypassed (Playwright's waits use eval)."""
    context = browser.new_context(bypass_csp=True, **options)
    pg = context.new_page()
    pg.goto(url)
    pg.wait_for_selector("[data-testid=item-row], #no-items:not([hidden])")
    return context, pg


def test_runs_list_flags_interrupted_and_errors_and_says_what_started_each_run(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history)
    runs = pg.locator("[data-testid=run-row]")
    expect(runs).to_have_count(3)
    latest, stalled, first = (runs.nth(i) for i in range(3))
    expect(latest.locator("[data-testid=run-status]")).to_have_text("⚠ finished with errors")
    expect(latest.locator("[data-testid=run-trigger]")).to_have_text("retry of run-a-finished")
    expect(latest.locator("[data-testid=run-counts]")).to_have_text("5: 2 finished, 3 error, 0 pending")
    expect(stalled.locator("[data-testid=run-status]")).to_have_text("⚠ interrupted")
    expect(first.locator("[data-testid=run-status]")).to_have_text("finished")
    expect(first.locator("[data-testid=run-trigger]")).to_have_text("publish (catalog.jsonl)")
    assert first.locator("[data-testid=run-duration]").inner_text().endswith(" s")
    # The chart: one bar group per run, finished and error parts sized by their counts.
    bars = pg.locator("[data-testid=runs-chart] [data-testid=run-bar]")
    expect(bars).to_have_count(3)
    newest = pg.locator("[data-testid=run-bar][data-run=run-c-latest]")
    assert newest.locator("rect[data-part=error]").count() == 1 and newest.locator("rect[data-part=finished]").count() == 1
    assert "3 error" in newest.locator("title").text_content()
    # A next run announced for a time long past is not "next": the scheduler stopped.
    expect(pg.locator("[data-testid=missed-run]")).to_contain_text("never started")
    context.close()


def test_search_finds_items_of_earlier_runs_and_non_ascii_references(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history)
    pg.fill("#f-reference", "HB-1001")
    expect(pg.locator("#no-items-text")).to_contain_text("in run run-c-latest. 1 match in other runs.")
    pg.click("#search-all-runs")
    only_reference(pg, "HB-1001")
    assert "run_id=all" in pg.url and "reference=HB-1001" in pg.url
    expect(pg.locator("[data-testid=overview-scope]")).to_contain_text("all runs")
    for text in ("ü", "über", "ÜBER"):
        pg.fill("#f-reference", text)
        only_reference(pg, "ÜBER-1")
    pg.select_option("#f-run", "run-a-finished")
    pg.fill("#f-reference", "")
    expect(rows(pg).locator("td.ref")).to_have_text(["ÜBER-1", "HB-1001"])  # HB-2000 has moved on to run C
    expect(pg.locator("[data-testid=items-summary]")).to_contain_text(
        "1 more of this run's items were synced again by later runs")
    context.close()


def test_filters_come_from_and_go_to_the_url_and_the_overview_counts_them(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history + "/?status=error&reference=SCR")
    expect(pg.locator("#f-status")).to_have_value("error")
    expect(pg.locator("#f-reference")).to_have_value("SCR")
    only_reference(pg, "SCR-1")
    for counter, expected in (("total", "1"), ("error", "1"), ("finished", "0"), ("pending", "0")):
        expect(pg.locator(f"#count-{counter}")).to_have_text(expected)
    expect(pg.locator("[data-testid=overview-scope]")).to_have_text("run run-c-latest · reference contains “SCR” · status error")
    pg.select_option("#f-status", "all")
    expect(rows(pg)).to_have_count(2)
    expect(pg.locator("#count-total")).to_have_text("2")
    assert "status=" not in pg.url and "reference=SCR" in pg.url
    # The CSV link carries the same filters and downloads every matching item.
    with pg.expect_download() as download:
        pg.click("#export-csv")
    text = download.value.path().read_text(encoding="utf-8")
    assert text.splitlines()[0].startswith("reference,item_type") and sorted(
        line.split(",")[0] for line in text.splitlines()[1:]) == ["SCR-1", "SCR-2"]
    context.close()


def test_since_is_typed_in_the_users_time_zone_and_shown_in_utc(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history, timezone_id="Europe/Berlin")
    pg.fill("#f-since", "2026-11-27 11:00")
    expect(pg.locator("[data-testid=since-utc]")).to_have_text("= 2026-11-27 10:00:00 UTC")
    pg.dispatch_event("#f-since", "change")
    expect(pg.locator("[data-testid=overview-scope]")).to_contain_text("synced since 2026-11-27 11:00:00")
    assert "since=2026-11-27T10%3A00%3A00.000Z" in pg.url
    header = pg.locator("#items-table thead").inner_text()
    assert "Europe/Berlin" in header
    context.close()


def test_an_unchanged_item_says_its_request_came_from_an_earlier_run(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history)
    pg.fill("#f-reference", "HB-2000")
    only_reference(pg, "HB-2000")
    row = rows(pg).first
    assert row.locator("[data-testid=request-id]").inner_text() == "req-a-2000"
    note = row.locator("[data-testid=item-note]").inner_text()
    assert "unchanged: not resent in this run" in note and "run run-a-finished" in note
    row.locator("[data-testid=show-timeline]").click()
    timeline = pg.locator("[data-testid=timeline]")
    # The timeline is fetched when the button is pressed: wait for it, not for the first paint.
    expect(timeline.locator("[data-testid=timeline-run]")).to_have_text(["run run-a-finished", "run run-c-latest"])
    events = timeline.locator("[data-testid=timeline-event]").all_inner_texts()
    assert any("accepted" in e and "req-a-2000" in e for e in events) and any("unchanged" in e for e in events)
    context.close()


def test_support_case_panel_for_ticked_error_items_with_copy_buttons(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=history)
    pg.select_option("#f-status", "error")
    expect(rows(pg)).to_have_count(3)
    for reference in ("HB-3000", "HB-3001"):
        pg.get_by_label(f"Add {reference} to the support case").check()
    panel = pg.locator("[data-testid=support-case]")
    expect(panel.locator("#support-request-ids li")).to_have_count(2)
    facts = panel.locator("#support-facts").inner_text()
    assert "Listings Items API (2021-08-01)" in facts and "putListingsItem" in facts
    assert "ATVPDKIKX0DER (United States)" in facts
    assert "sandbox (https://sandbox.sellingpartnerapi-na.amazon.com)" in facts
    assert panel.locator("[data-testid=request-id]").all_inner_texts() == [
        "req-c-3001", "11111111-2222-4333-8444-555555555555"]
    panel.get_by_label("Copy request ID 11111111-2222-4333-8444-555555555555 of the support case").click()
    assert pg.evaluate("navigator.clipboard.readText()") == "11111111-2222-4333-8444-555555555555"
    pg.click("#support-copy-all")
    copied = pg.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("API: Listings Items API (2021-08-01)\nOperation: putListingsItem\nEndpoint: sandbox")
    assert "Marketplace: ATVPDKIKX0DER (United States)" in copied and "x-amzn-RequestId: req-c-3001" in copied
    # One click on a request ID in the table selects all of it (a double click would stop at a hyphen).
    rid = rows(pg).filter(has_text="HB-3000").locator("[data-testid=request-id]")
    rid.click()
    assert pg.evaluate("window.getSelection().toString()") == "11111111-2222-4333-8444-555555555555"
    context.close()


def test_error_details_buttons_name_their_item_and_work_from_the_keyboard(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history + "/?status=error")
    button = pg.get_by_role("button", name="Error details of HB-3001")
    expect(button).to_have_attribute("aria-expanded", "false")
    button.focus()
    pg.keyboard.press("Enter")
    expect(button).to_have_attribute("aria-expanded", "true")
    expect(pg.locator("[data-testid=error-details]")).to_have_count(1)
    pg.keyboard.press("Space")
    expect(button).to_have_attribute("aria-expanded", "false")
    expect(pg.locator("[data-testid=error-details]")).to_have_count(0)
    # Reachable with Tab alone: from the filters' last control onwards, the first row's buttons come.
    pg.locator("#export-csv").focus()
    names = []
    for _ in range(12):
        pg.keyboard.press("Tab")
        names.append(pg.evaluate("document.activeElement.getAttribute('aria-label')"))
    assert any(name and name.startswith("Error details of ") for name in names), names
    context.close()


def test_dark_mode_follows_the_system_setting(browser, history):
    context, pg = open_page(browser, history, color_scheme="dark")
    background = pg.evaluate("getComputedStyle(document.body).backgroundColor")
    context.close()
    context, light = open_page(browser, history, color_scheme="light")
    assert light.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(246, 247, 249)"
    context.close()
    assert background == "rgb(20, 24, 28)"


def test_phone_width_has_no_horizontal_scroll_and_shows_items_as_cards(browser, history):
    from playwright.sync_api import expect

    context, pg = open_page(browser, history, viewport={"width": 390, "height": 844}, is_mobile=True)
    pg.select_option("#f-run", "all")
    expect(rows(pg)).to_have_count(8)
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), pg.evaluate(
        "[document.documentElement.scrollWidth, window.innerWidth]")
    assert pg.locator("#items-table thead").is_hidden()
    card = rows(pg).filter(has_text="HB-3000")
    box = card.bounding_box()
    assert box["width"] <= 390
    rid = card.locator("[data-testid=request-id]")
    # The request ID is cut to one line with an ellipsis, whole in its tooltip and its copy button.
    assert rid.evaluate("e => e.scrollWidth > e.clientWidth")
    assert rid.bounding_box()["height"] < 24
    assert card.get_by_role("button", name="Copy request ID 11111111-2222-4333-8444-555555555555 of HB-3000").is_visible()
    card.locator("[data-testid=show-error]").click()
    assert pg.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    context.close()


def test_docs_render_without_network_access(browser, history):
    context = browser.new_context()
    blocked = []

    def local_only(route):
        host = route.request.url.split("/")[2].split(":")[0]
        if host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    context.route("**/*", local_only)
    pg = context.new_page()
    pg.goto(history + "/docs")
    pg.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "catalog-sync read API" in pg.locator(".swagger-ui .info .title").inner_text()
    assert pg.locator(".opblock-summary-path", has_text="/api/items.csv").count() == 1
    assert blocked == []
    context.close()


# -- live: a run finishing while the page is open ------------------------------------------------------
def test_a_running_run_finishes_on_screen_without_losing_the_users_place(browser, tmp_path):
    from playwright.sync_api import expect

    store = ReadStore(f"sqlite:///{tmp_path / 'live.db'}")
    store.migrate()
    run = SampleRun(run_id="run-live", start=just_now())
    partitions = Partitions()
    refs = [f"LIVE-{i:02d}" for i in range(40)]
    store.apply("recorder", partitions.messages([run.opened(), *[run.changed(r) for r in refs],
                                                 run.validation_failed("LIVE-00")]))
    try:
        with serving(create_app(ReadModel(store))) as url:
            context, pg = open_page(browser, url)
            expect(pg.locator("#act-running")).to_have_text("yes")
            pg.click("#view-more")
            expect(rows(pg)).to_have_count(40)
            error_row = rows(pg).filter(has_text="LIVE-00")
            error_row.locator("[data-testid=show-error]").click()
            expect(pg.locator("[data-testid=error-details]")).to_have_count(1)
            pg.evaluate("window.scrollTo(0, 400)")
            assert rows(pg).locator("td.status").all_inner_texts().count("pending") == 39

            store.apply("recorder", partitions.messages(
                [run.submitted(r, accepted=(i % 10 != 5)) for i, r in enumerate(refs) if r != "LIVE-00"]
                + [run.closed(len(refs))]))
            expect(pg.locator("#act-running")).to_have_text("no", timeout=15_000)
            expect(pg.locator("#count-pending")).to_have_text("0", timeout=15_000)
            expect(pg.locator("#count-error")).to_have_text("5")
            expect(rows(pg).locator("td.status-pending")).to_have_count(0, timeout=15_000)
            expect(rows(pg)).to_have_count(40)  # both loaded pages stay
            # The status is the cell's first line (an accepted item adds Amazon's view below it).
            statuses = [text.splitlines()[0] for text in rows(pg).locator("td.status").all_inner_texts()]
            assert statuses.count("finished") == 35
            expect(pg.locator("[data-testid=error-details]")).to_have_count(1)  # still open
            assert pg.get_by_role("button", name="Error details of LIVE-00").get_attribute("aria-expanded") == "true"
            assert pg.evaluate("window.scrollY") > 0
            expect(pg.locator("[data-testid=run-row]").first.locator("[data-testid=run-status]")).to_have_text(
                "⚠ finished with errors")
            context.close()
    finally:
        store.close()


def test_the_page_tells_accepted_awaiting_amazon_from_live_and_from_turned_down(browser, tmp_path):
    from playwright.sync_api import expect

    store = ReadStore(f"sqlite:///{tmp_path / 'read.db'}")
    store.migrate()
    run = SampleRun(mode="production", start=just_now())
    events = [run.opened(), *[run.changed(r) for r in ("LV-1", "AW-1", "TD-1")]]
    live, awaiting, turned_down = (run.submitted(r) for r in ("LV-1", "AW-1", "TD-1"))
    events += [live, awaiting, turned_down, run.closed(3), run.observed(live, "live"),
               run.observed(turned_down, "error", request_id="req-get-td1")]
    store.apply("recorder", Partitions().messages(events))
    with serving(create_app(ReadModel(store))) as url:
        context, pg = open_page(browser, url)
        expect(rows(pg)).to_have_count(3)
        states = {row.locator("td.ref").inner_text(): row for row in rows(pg).all()}
        assert states["LV-1"].locator("[data-testid=listing-state]").inner_text() == "live on Amazon"
        assert states["AW-1"].locator("[data-testid=listing-state]").inner_text() == "accepted, awaiting Amazon"
        turned = states["TD-1"]
        assert turned.locator("td.status").inner_text().startswith("error")
        assert turned.locator("[data-testid=listing-state]").inner_text() == "turned down after acceptance"
        assert turned.locator("[data-testid=request-id]").inner_text() == "req-get-td1"
        turned.locator("[data-testid=show-error]").click()
        expect(pg.locator("[data-testid=error-details]")).to_contain_text("8541")
        context.close()
    store.close()
