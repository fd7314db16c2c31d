"""Settings from the environment (DESIGN §5), read when ``build_defs`` is called, never at import.

Secrets are *not* read here: resources get them through ``dg.EnvVar`` so they never reach logs, metadata
or the UI. This class only records which variables are set, to choose the live or simulated path.
"""

import datetime as dt
from collections.abc import Mapping
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field


class Settings(BaseModel):
    """Every variable the project reads; the README documents each one."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    databricks_host: str | None = Field(None, validation_alias=AliasChoices(
        "DATABRICKS_HOST", "DATABRICKS_WORKSPACE_URL"))
    token_variable: str | None = None
    has_client_credentials: bool = False
    databricks_workspace_id: str | None = Field(None, validation_alias="DATABRICKS_WORKSPACE_ID")
    databricks_warehouse_id: str | None = Field(None, validation_alias="DATABRICKS_WAREHOUSE_ID")
    databricks_account_id: str | None = Field(None, validation_alias="DATABRICKS_ACCOUNT_ID")
    databricks_account_host: str | None = Field(None, validation_alias="DATABRICKS_ACCOUNT_HOST")
    databricks_rate_limit: float = Field(20.0, ge=0, validation_alias="DATABRICKS_RATE_LIMIT")
    # None: system_tables for a live workspace with a SQL warehouse, simulated without DATABRICKS_HOST.
    billing_source: str | None = Field(None, validation_alias="COST_ASSETS_BILLING_SOURCE")
    cloud: Literal["AZURE", "AWS", "GCP"] = Field("AZURE", validation_alias="COST_ASSETS_CLOUD")
    tier: Literal["STANDARD", "PREMIUM", "ENTERPRISE"] = Field("PREMIUM", validation_alias="COST_ASSETS_TIER")
    prices_path: str | None = Field(None, validation_alias="COST_ASSETS_PRICES")
    azure_region: str | None = Field(None, validation_alias="COST_ASSETS_AZURE_REGION")
    azure_prices_url: str | None = Field(None, validation_alias="COST_ASSETS_AZURE_PRICES_URL")
    duckdb_path: str = Field("data/cost_assets.duckdb", validation_alias="COST_ASSETS_DUCKDB")
    sim_seed: int = Field(7, validation_alias="COST_ASSETS_SIM_SEED")
    sim_scale: Literal["tiny", "small", "medium", "large"] = Field("small", validation_alias="COST_ASSETS_SIM_SCALE")
    sim_days: int = Field(7, ge=1, validation_alias="COST_ASSETS_SIM_DAYS")
    sim_start: dt.date | None = Field(None, validation_alias="COST_ASSETS_SIM_START")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        upper = {k: v for k, v in environ.items() if v != ""}
        for key in ("COST_ASSETS_CLOUD", "COST_ASSETS_TIER"):
            if key in upper:
                upper[key] = upper[key].upper()
        token_variable = next((k for k in ("DATABRICKS_TOKEN", "DATABRICKS_ACCESS_TOKEN") if k in upper), None)
        has_client_credentials = "DATABRICKS_CLIENT_ID" in upper and "DATABRICKS_CLIENT_SECRET" in upper
        return cls.model_validate({**upper, "token_variable": token_variable,
                                   "has_client_credentials": has_client_credentials})

    @property
    def simulated_start(self) -> dt.date:
        """The simulated world's first day: by default the last ``sim_days`` complete UTC days."""
        if self.sim_start is not None:
            return self.sim_start
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=self.sim_days)
