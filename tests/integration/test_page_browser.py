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
    assert set(rows(page).locator("td:nth-child(4)").all_inner_texts()) == {"error"}
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
    with page.expect_event("requestfailed", timeout=10_000) as aborted:
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
