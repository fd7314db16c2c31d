"""The Dagster UI serves the project: dagster-webserver on the repo's workspace.yaml, driven by headless
Chromium (Debian's /usr/bin/chromium, through Playwright; no browser is downloaded).

`make test` installs Debian's chromium when it is missing.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[1]
WORKSPACE = REPO / "workspace.yaml"
CHROMIUM = os.environ.get("COST_ASSETS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Asset keys the catalog must list (a key `prefix/name` is a row of the catalog folder `prefix`).
EXPECTED_ASSETS = ["raw/job_runs", "raw/billing_usage", "ref/dbu_prices", "mart/run_costs", "mart/attributed_costs"]
# What the Automation page must list: the daily schedule and the late-billing sensor.
EXPECTED_AUTOMATIONS = ["daily_pipeline_schedule", "late_billing_sensor"]
STARTUP_TIMEOUT_S = 240
UI_TIMEOUT_MS = 60_000

WORKSPACE_QUERY = """
{ workspaceOrError { __typename
    ... on Workspace { locationEntries { name loadStatus
        locationOrLoadError { __typename ... on PythonError { message stack } } } }
    ... on PythonError { message } } }
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _webserver_executable() -> str:
    beside_python = Path(sys.executable).parent / "dagster-webserver"
    found = str(beside_python) if beside_python.exists() else shutil.which("dagster-webserver")
    if not found:
        pytest.fail("dagster-webserver is not installed in this environment: run `make test`.", pytrace=False)
    return found


def _wait_until_loaded(base: str, proc: subprocess.Popen, log: Path) -> None:
    """Wait for /server_info, then for every code location to finish loading without error."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    last = "no answer yet"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"dagster-webserver exited with {proc.returncode}:\n{_tail(log)}", pytrace=False)
        try:
            httpx.get(f"{base}/server_info", timeout=5).raise_for_status()
            answer = httpx.post(f"{base}/graphql", json={"query": WORKSPACE_QUERY}, timeout=30).json()
            workspace = answer["data"]["workspaceOrError"]
            if workspace["__typename"] != "Workspace":
                pytest.fail(f"workspace failed to load: {workspace.get('message')}", pytrace=False)
            entries = workspace["locationEntries"]
            for entry in entries:
                error = entry["locationOrLoadError"] or {}
                if error.get("__typename") == "PythonError":
                    stack = "".join(error["stack"])
                    message = f"code location {entry['name']} failed to load:\n{error['message']}\n{stack}"
                    pytest.fail(message, pytrace=False)
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                return
            last = f"locations: {[(e['name'], e['loadStatus']) for e in entries]}"
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            last = repr(exc)
        time.sleep(1)
    message = f"dagster-webserver not ready after {STARTUP_TIMEOUT_S}s ({last}):\n{_tail(log)}"
    pytest.fail(message, pytrace=False)


@pytest.fixture
def webserver(tmp_path: Path) -> Iterator[str]:
    """dagster-webserver on the repo's workspace.yaml, a temporary DAGSTER_HOME and DuckDB file."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(home), "COST_ASSETS_DUCKDB": str(tmp_path / "ui.duckdb")}
    port = _free_port()
    log = tmp_path / "webserver.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [_webserver_executable(), "-w", str(WORKSPACE), "-h", "127.0.0.1", "-p", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: the code server it spawns goes with it
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_loaded(base, proc, log)
        yield base
    finally:
        # Stop the webserver, then whatever of its process group (the code server) outlived it.
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                continue


def test_ui_shows_the_raw_assets_and_their_lineage(webserver: str, tmp_path: Path):
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium not found at {CHROMIUM}. `make test` installs Debian's chromium "
            "(apt-get install chromium); or point COST_ASSETS_CHROMIUM at a Chromium binary.",
            pytrace=False,
        )
    try:
        from playwright.sync_api import expect, sync_playwright
    except ImportError:
        pytest.fail("playwright is not installed: run `make test` (it is in the dev extra).", pytrace=False)

    with sync_playwright() as pw:
        # A persistent context is how Playwright takes a fresh --user-data-dir.
        browser = pw.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            headless=True,
            viewport={"width": 1600, "height": 1000},
        )
        try:
            page = browser.new_page()
            page.set_default_timeout(UI_TIMEOUT_MS)
            # The OSS UI greets a new browser with a "Join the Dagster community" dialog; dismiss it.
            page.add_locator_handler(page.get_by_role("button", name="Skip"), lambda button: button.click())

            # The catalog, one key prefix (folder) at a time: a row per asset, linking to the asset's page.
            for prefix in sorted({key.split("/")[0] for key in EXPECTED_ASSETS}):
                page.goto(f"{webserver}/assets/{prefix}")
                for key in (k for k in EXPECTED_ASSETS if k.startswith(f"{prefix}/")):
                    name = key.split("/")[-1]
                    row_link = page.locator(f'a[href="/assets/{key}"]').filter(has_text=name)
                    expect(row_link.first).to_be_visible(timeout=UI_TIMEOUT_MS)
                page.screenshot(path=str(tmp_path / f"catalog_{prefix}.png"), full_page=True)

            # The asset raw/job_runs: its page (breadcrumbs Assets > raw > job_runs) and its lineage graph,
            # where the asset is a node drawn in the SVG canvas.
            page.goto(f"{webserver}/assets/raw/job_runs?view=lineage")
            expect(page.get_by_role("tab", name="Lineage")).to_be_visible(timeout=UI_TIMEOUT_MS)
            raw_crumb = page.locator('a[href="/assets/raw?view=folder"], a[href="/assets/raw"]')
            expect(raw_crumb.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            node = page.locator("svg foreignObject").get_by_text("job_runs", exact=True)
            expect(node.first).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "lineage_raw_job_runs.png"))

            # Automation: the schedule and the sensor are listed (both start running with the daemon).
            page.goto(f"{webserver}/automation")
            for name in EXPECTED_AUTOMATIONS:
                expect(page.get_by_text(name, exact=True).first).to_be_visible(timeout=UI_TIMEOUT_MS)
            page.screenshot(path=str(tmp_path / "automation.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "catalog_raw.png").stat().st_size > 0
    assert (tmp_path / "catalog_ref.png").stat().st_size > 0
    assert (tmp_path / "lineage_raw_job_runs.png").stat().st_size > 0
    assert (tmp_path / "catalog_mart.png").stat().st_size > 0
    assert (tmp_path / "automation.png").stat().st_size > 0
