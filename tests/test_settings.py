"""Settings fail early and briefly: every problem is one line naming the variable, the value and what is allowed."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cost_assets.config import ConfigurationError, Settings
from cost_assets.definitions import build_defs

# One bad value per variable, and a word its line must carry (what is allowed, or why).
BAD = {
    "COST_ASSETS_SIM_SCALE": ("huge", "'tiny', 'small', 'medium' or 'large'"),
    "COST_ASSETS_CLOUD": ("azur", "'AZURE', 'AWS' or 'GCP'"),
    "COST_ASSETS_TIER": ("gold", "'STANDARD', 'PREMIUM' or 'ENTERPRISE'"),
    "COST_ASSETS_SIM_SEED": ("seven", "valid integer"),
    "COST_ASSETS_SIM_DAYS": ("0", "greater than or equal to 1"),
    "COST_ASSETS_SHRINK_THRESHOLD": ("1.5", "less than 1"),
    "DATABRICKS_RATE_LIMIT": ("-1", "greater than or equal to 0"),
    "COST_ASSETS_BILLING_SOURCE": ("csv", "csv:<path or glob>"),
    "DATABRICKS_HOST": ("http://adb-123.azuredatabricks.net", "only https://"),
    "DATABRICKS_ACCOUNT_HOST": ("ftp://accounts.example.com", "expected https://"),
    "COST_ASSETS_AZURE_PRICES_URL": ("http://prices.example.com/api", "only https://"),
}


@pytest.mark.parametrize("variable", sorted(BAD))
def test_each_bad_setting_is_one_line_naming_variable_value_and_what_is_allowed(variable):
    value, allowed = BAD[variable]
    with pytest.raises(ConfigurationError) as raised:
        build_defs({variable: value})
    assert len(raised.value.problems) == 1
    line = raised.value.problems[0]
    assert line.startswith(f"{variable}={value!r}: "), line
    assert allowed in line, line
    assert "\n" not in line and len(line) < 200


def test_all_problems_are_reported_at_once():
    environ = {variable: value for variable, (value, _) in BAD.items()}
    with pytest.raises(ConfigurationError) as raised:
        Settings.from_environ(environ)
    assert sorted(p.split("=", 1)[0] for p in raised.value.problems) == sorted(BAD)
    assert str(raised.value).count("\n") == len(BAD)  # a header line, then one line per problem


@pytest.mark.parametrize(
    "host",
    [
        "http://127.0.0.1:8765",
        "http://localhost:8765",
        "adb-1.azuredatabricks.net",
        "https://adb-1.azuredatabricks.net/",
    ],
)
def test_https_and_loopback_http_hosts_are_accepted(host):
    assert Settings.from_environ({"DATABRICKS_HOST": host}).databricks_host == host


def test_lower_case_cloud_and_tier_are_accepted():
    settings = Settings.from_environ({"COST_ASSETS_CLOUD": "aws", "COST_ASSETS_TIER": "enterprise"})
    assert (settings.cloud, settings.tier) == ("AWS", "ENTERPRISE")


def test_cost_assets_run_prints_the_lines_without_a_traceback(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABRICKS_", "COST_ASSETS_", "DAGSTER_"))}
    env.update({"COST_ASSETS_SIM_SCALE": "huge", "DATABRICKS_HOST": "http://example.com"})
    result = subprocess.run(
        [sys.executable, "-m", "cost_assets.cli", "run", "--days", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "COST_ASSETS_SIM_SCALE='huge'" in result.stderr and "DATABRICKS_HOST='http://example.com'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 3  # "invalid settings:" and the two problems
