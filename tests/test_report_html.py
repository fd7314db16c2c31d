"""The offline HTML report in headless Chromium (Debian's /usr/bin/chromium through Playwright; no browser is
downloaded): it loads with the network cut off, logs no console error, and every chart has drawn SVG marks.

The screenshot is kept in ``.artifacts/report-html.png`` at the repository root (gitignored), to look at
after a run.
"""

import os
from pathlib import Path

import pytest
import report_builders as fx
from report_builders import D1, D2

from cost_assets.reports import page
from cost_assets.reports.ledger import Window

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / ".artifacts"
CHROMIUM = os.environ.get("COST_ASSETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
# Per chart (Vega names the i-th cell of the page's vconcat `concat_i_group`): the SVG elements drawn in its
# data-mark groups (class role-mark; axes, legends and titles have roles of their own).
COUNT_MARKS = """(n) => Array.from({length: n}, (_, i) => document.querySelectorAll(
    `svg g.concat_${i}_group g.role-mark > :is(path, rect, line, text, g)`).length)"""


@pytest.fixture()
def browser_page():
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: `make test` installs Debian's chromium.", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser.new_page(viewport={"width": 1100, "height": 900})
        finally:
            browser.close()


def test_the_html_report_draws_every_chart_offline(tmp_path: Path, browser_page):
    database = fx.write_ledger(tmp_path / "cost.duckdb")
    written = page.write(database, Window(D1, D2), tmp_path / "report.html")
    # With budgets and anomalies in the ledger every chart has data: 8 charts, nothing left out.
    assert len(written.charts) == 8 and written.notes == ()
    html = written.path.read_text()
    assert "<script src=" not in html and "cdn.jsdelivr" not in html  # the JavaScript is inlined

    errors: list[str] = []
    outside: list[str] = []
    browser_page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_page.on("pageerror", lambda e: errors.append(str(e)))

    def offline(route):  # anything but the file itself would be a network fetch: refuse and record it
        if route.request.url.startswith("file://"):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    browser_page.route("**/*", offline)
    browser_page.goto(written.path.as_uri())
    browser_page.wait_for_selector("svg g.role-mark", timeout=60_000)

    marks = browser_page.evaluate(COUNT_MARKS, len(written.charts))
    titles = browser_page.locator("svg g.role-title text").all_text_contents()
    ARTIFACTS.mkdir(exist_ok=True)
    browser_page.screenshot(path=str(ARTIFACTS / "report-html.png"), full_page=True)

    assert errors == [] and outside == []
    assert all(n > 0 for n in marks), dict(zip(written.charts, marks, strict=True))
    for title in written.charts:
        assert title in titles


def test_without_budgets_and_anomalies_the_page_says_what_is_not_built(tmp_path: Path):
    database = fx.write_ledger(tmp_path / "cost.duckdb", optional=False)
    written = page.write(database, Window(D1, D2), tmp_path / "report.html")
    assert len(written.charts) == 6
    assert any("not built: mart.budget_status" in note for note in written.notes)
    assert any("not built: mart.cost_anomalies" in note for note in written.notes)
    assert "not built: mart.budget_status" in written.path.read_text()


def test_the_daily_asset_writes_the_file_and_links_it(tmp_path: Path):
    import dagster as dg

    from cost_assets.assets.report_html import ReportFiles, build_report_html

    database = fx.write_ledger(tmp_path / "cost.duckdb")
    asset = build_report_html(set())
    result = dg.materialize(
        [asset], resources={"report_files": ReportFiles(database=database)}, partition_key=D2.isoformat()
    )
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    # Beside the DuckDB file by default; the week ending the partition's day (D2 − 6 .. D2).
    expected = (tmp_path / "reports" / "cost-report-2026-01-02.html").resolve()
    assert metadata["report_file"].value == str(expected) and expected.exists()
    assert metadata["report_link"].value == expected.as_uri()
    assert metadata["covers"].value == "2025-12-27 .. 2026-01-02"
    (check,) = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["offline"].value is True
