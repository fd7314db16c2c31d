"""Settings from the environment, read when ``build_defs`` is called, never at import.

Secrets are *not* read here: resources get them through ``dg.EnvVar`` so they never reach logs, metadata
or the UI. This class only records which variables are set, to choose the live or simulated path.

Every setting is checked when the definitions load. All problems are reported at once, one line each,
naming the variable, the value and what is allowed (:class:`ConfigurationError`), so a typo costs one
short message instead of a traceback in the middle of a run.
"""

import datetime as dt
import re
from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError

from cost_assets.delta import location_problem
from cost_assets.export.postgres import url_problem
from cost_assets.ingest.http import normalize_host

BILLING_SOURCES = "simulated, csv:<path or glob>, account_api or system_tables"
# Settings whose value is a URL a credential may travel to: https, or plain http only for loopback.
CASE_FREE = ("COST_ASSETS_CLOUD", "COST_ASSETS_TIER")
URL_SETTINGS = (
    "DATABRICKS_HOST",
    "DATABRICKS_WORKSPACE_URL",
    "DATABRICKS_ACCOUNT_HOST",
    "COST_ASSETS_AZURE_PRICES_URL",
    "COST_ASSETS_OBSERVABILITY_URL",
)


class ConfigurationError(ValueError):
    """Settings the project cannot act on: one line per problem, each naming the variable to fix."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


class Settings(BaseModel):
    """Every variable the project reads; the README documents each one."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    databricks_host: str | None = Field(
        None, validation_alias=AliasChoices("DATABRICKS_HOST", "DATABRICKS_WORKSPACE_URL")
    )
    token_variable: str | None = None
    has_client_credentials: bool = False
    databricks_workspace_id: str | None = Field(None, validation_alias="DATABRICKS_WORKSPACE_ID")
    databricks_warehouse_id: str | None = Field(None, validation_alias="DATABRICKS_WAREHOUSE_ID")
    databricks_account_id: str | None = Field(None, validation_alias="DATABRICKS_ACCOUNT_ID")
    databricks_account_host: str | None = Field(None, validation_alias="DATABRICKS_ACCOUNT_HOST")
    databricks_rate_limit: float = Field(20.0, ge=0, validation_alias="DATABRICKS_RATE_LIMIT")
    # None: system_tables for a live workspace with a SQL warehouse, simulated without DATABRICKS_HOST.
    billing_source: str | None = Field(None, validation_alias="COST_ASSETS_BILLING_SOURCE")
    # system_tables: the warehouse reduces and prices the bill, results through EXTERNAL_LINKS (docs/account-scale.md).
    sql_pushdown: bool = Field(True, validation_alias="COST_ASSETS_SQL_PUSHDOWN")
    cloud: Literal["AZURE", "AWS", "GCP"] = Field("AZURE", validation_alias="COST_ASSETS_CLOUD")
    tier: Literal["STANDARD", "PREMIUM", "ENTERPRISE"] = Field("PREMIUM", validation_alias="COST_ASSETS_TIER")
    prices_path: str | None = Field(None, validation_alias="COST_ASSETS_PRICES")
    budgets_path: str | None = Field(None, validation_alias="COST_ASSETS_BUDGETS")
    # The cloud provider's cost export files (docs/cloud-bill.md); unset: no cloud bill assets.
    cloud_bill: str | None = Field(None, validation_alias="COST_ASSETS_CLOUD_BILL")
    azure_region: str | None = Field(None, validation_alias="COST_ASSETS_AZURE_REGION")
    azure_prices_url: str | None = Field(None, validation_alias="COST_ASSETS_AZURE_PRICES_URL")
    # The pre-launch estimate's VM $/h (`cost-assets estimate`, docs/cloud-bill.md): the price sheet's, or what
    # the cloud bill showed (mart.observed_vm_prices) where it saw enough VM-hours.
    vm_prices: Literal["sheet", "observed"] = Field("sheet", validation_alias="COST_ASSETS_VM_PRICES")
    duckdb_path: str = Field("data/cost_assets.duckdb", validation_alias="COST_ASSETS_DUCKDB")
    # Where the ledger's tables live: the DuckDB file above, or Delta Lake tables (docs/account-scale.md).
    storage: str = Field("duckdb", validation_alias="COST_ASSETS_STORAGE")
    # The first day of the daily partitions (cost_assets/partitions.py): the oldest day a backfill can ask for.
    partition_start: dt.date = Field(dt.date(2025, 1, 1), validation_alias="COST_ASSETS_PARTITION_START")
    # Where the report/html asset writes its file (docs/reports.md); None: `reports/` beside the DuckDB file.
    report_dir: str | None = Field(None, validation_alias="COST_ASSETS_REPORT_DIR")
    # The alerts' outbox (cost_assets/alerts.py): SQLite, not the DuckDB file whose writer lock a run holds.
    alert_store_path: str = Field("data/alerts.sqlite", validation_alias="COST_ASSETS_ALERT_STORE")
    # Serving calls' local estimates (cost_assets/instrument.py, docs/ai-spend.md): SQLite, apart from the ledger.
    call_log_path: str | None = Field(None, validation_alias="COST_ASSETS_CALL_LOG")
    # Cost anomaly detection (docs/anomalies.md): band half-width in robust σ, and an alert needs an impact
    # of at least max(floor $, pct × expected).
    anomaly_k: float = Field(3.5, gt=0, validation_alias="COST_ASSETS_ANOMALY_K")
    anomaly_floor_usd: float = Field(50.0, ge=0, validation_alias="COST_ASSETS_ANOMALY_FLOOR_USD")
    anomaly_pct: float = Field(0.2, ge=0, validation_alias="COST_ASSETS_ANOMALY_PCT")
    # A source that answers with much less than the stored day is suspect (see cost_assets/guard.py).
    shrink_threshold: float = Field(0.5, gt=0, lt=1, validation_alias="COST_ASSETS_SHRINK_THRESHOLD")
    sim_seed: int = Field(7, validation_alias="COST_ASSETS_SIM_SEED")
    sim_scale: Literal["tiny", "small", "medium", "large"] = Field("small", validation_alias="COST_ASSETS_SIM_SCALE")
    # Only which days `cost-assets run` (`make run`) materializes without --days: the world answers for any day.
    sim_days: int = Field(7, ge=1, validation_alias="COST_ASSETS_SIM_DAYS")
    # Many workspaces (docs/account-scale.md): a workspaces file (cost_assets/workspaces.py), or a simulated
    # account of N workspaces; at most this many are fetched at once, each with its own rate limit.
    workspaces_path: str | None = Field(None, validation_alias="COST_ASSETS_WORKSPACES")
    sim_workspaces: int = Field(1, ge=1, validation_alias="COST_ASSETS_SIM_WORKSPACES")
    workspace_concurrency: int = Field(8, ge=1, validation_alias="COST_ASSETS_WORKSPACE_CONCURRENCY")
    # Exports (docs/exports.md): each present only when configured. The Observability Service's bearer token
    # is a secret (dg.EnvVar); only whether it is set is recorded here.
    observability_url: str | None = Field(None, validation_alias="COST_ASSETS_OBSERVABILITY_URL")
    observability_batch_size: int = Field(500, ge=1, validation_alias="COST_ASSETS_OBSERVABILITY_BATCH_SIZE")
    observability_token_set: bool = False
    focus_export: bool = Field(False, validation_alias="COST_ASSETS_FOCUS_EXPORT")
    focus_dir: str = Field("data/focus", validation_alias="COST_ASSETS_FOCUS_DIR")
    # COST_ASSETS_POSTGRES_URL holds the password: only whether it is set is recorded (the resource reads it
    # as a dg.EnvVar); its shape is checked here and reported redacted.
    postgres_url_set: bool = False
    # `cost-assets metrics serve|textfile`: seconds one reading of the DuckDB file is served before re-reading.
    metrics_cache_seconds: float = Field(60.0, ge=0, validation_alias="COST_ASSETS_METRICS_CACHE_SECONDS")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        """The settings of ``environ``; :class:`ConfigurationError` lists every problem, one line each."""
        given = {k: v for k, v in environ.items() if v != ""}
        for key in CASE_FREE:
            if key in given:
                given[key] = given[key].upper()
        token_variable = next((k for k in ("DATABRICKS_TOKEN", "DATABRICKS_ACCESS_TOKEN") if k in given), None)
        has_client_credentials = "DATABRICKS_CLIENT_ID" in given and "DATABRICKS_CLIENT_SECRET" in given
        given["observability_token_set"] = "COST_ASSETS_OBSERVABILITY_TOKEN" in given
        given["postgres_url_set"] = "COST_ASSETS_POSTGRES_URL" in given
        problems = _url_problems(given) + _billing_source_problem(given) + _cloud_bill_problem(given)
        if "COST_ASSETS_STORAGE" in given and (problem := location_problem(given["COST_ASSETS_STORAGE"])):
            problems.append(f"COST_ASSETS_STORAGE={given['COST_ASSETS_STORAGE']!r}: {problem}")
        if "COST_ASSETS_WORKSPACES" in given and given.get("COST_ASSETS_SIM_WORKSPACES", "1") != "1":
            problems.append(
                "COST_ASSETS_SIM_WORKSPACES is for the simulated account; COST_ASSETS_WORKSPACES lists live "
                "workspaces: set one of them"
            )
        if "COST_ASSETS_OBSERVABILITY_URL" in given and not given["observability_token_set"]:
            problems.append("COST_ASSETS_OBSERVABILITY_URL is set, COST_ASSETS_OBSERVABILITY_TOKEN is not")
        if given["postgres_url_set"] and (problem := url_problem(given["COST_ASSETS_POSTGRES_URL"])):
            problems.append(f"COST_ASSETS_POSTGRES_URL={problem}")
        try:
            settings = cls.model_validate(
                {**given, "token_variable": token_variable, "has_client_credentials": has_client_credentials}
            )
        except ValidationError as e:
            problems += [_line(error, environ) for error in e.errors()]
            settings = None
        if problems:
            raise ConfigurationError(sorted(set(problems)))
        return settings

    @property
    def ledger(self) -> str:
        """Where readers find the ledger: the DuckDB file, or ``delta:<uri>`` (:mod:`cost_assets.read`)."""
        return self.duckdb_path if self.storage == "duckdb" else self.storage


def _line(error: Mapping, environ: Mapping[str, str]) -> str:
    """``VARIABLE='value': what is allowed`` for one pydantic error (the value as the user wrote it)."""
    variable = str(error["loc"][0]) if error.get("loc") else "settings"
    value = environ.get(variable, error.get("input"))
    message = str(error["msg"]).replace("Input should be", "must be")
    if error.get("type") == "literal_error":
        message = message.replace("must be", "allowed (any case):" if variable in CASE_FREE else "allowed:")
    return f"{variable}={value!r}: {message}"


def _url_problems(given: Mapping[str, str]) -> list[str]:
    """A credential never travels in clear text: https, or http only for 127.0.0.1 / localhost."""
    problems = []
    for variable in URL_SETTINGS:
        if variable in given:
            try:
                normalize_host(given[variable])
            except ValueError as e:
                problems.append(f"{variable}={given[variable]!r}: {e}")
    return problems


def _billing_source_problem(given: Mapping[str, str]) -> list[str]:
    source = given.get("COST_ASSETS_BILLING_SOURCE")
    if source is None or source in ("simulated", "account_api", "system_tables"):
        return []
    if source.startswith("csv:") and source.removeprefix("csv:").strip():
        return []
    return [f"COST_ASSETS_BILLING_SOURCE={source!r}: allowed: {BILLING_SOURCES}"]


CLOUD_BILL_FORMS = (
    "<path or glob>, focus:<path or glob> or azure:<path or glob> (CSV or Parquet files), "
    "or simulated, simulated:focus, simulated:azure (the simulated workspace's bill)"
)
SIMULATED_CLOUD_BILLS = {"simulated": "focus", "simulated:focus": "focus", "simulated:azure": "azure"}


def _cloud_bill_problem(given: Mapping[str, str]) -> list[str]:
    """A prefix other than ``focus:`` / ``azure:`` is a typo, not a file name (a drive letter aside); a URL
    (``s3://``…) is not read: sync the exports to a local or mounted folder."""
    value = given.get("COST_ASSETS_CLOUD_BILL")
    if value is None:
        return []
    if value in SIMULATED_CLOUD_BILLS:  # the simulated world's bill: only beside the simulated workspace
        if "DATABRICKS_HOST" in given:
            return [f"COST_ASSETS_CLOUD_BILL={value!r}: the simulated cloud bill needs the simulated workspace"]
        if value == "simulated:azure" and given.get("COST_ASSETS_CLOUD", "AZURE") != "AZURE":
            return [f"COST_ASSETS_CLOUD_BILL={value!r}: the Azure cost details export needs COST_ASSETS_CLOUD=AZURE"]
        return []
    prefix = re.match(r"^([A-Za-z_]{2,}):(?!//)", value)
    path = value.split(":", 1)[1] if prefix else value
    if (prefix and prefix.group(1) not in ("focus", "azure")) or not path.strip() or "://" in value:
        return [f"COST_ASSETS_CLOUD_BILL={value!r}: allowed: {CLOUD_BILL_FORMS}"]
    return []
