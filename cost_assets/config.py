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
    has_token: bool = False
    billing_source: str = Field("simulated", validation_alias="COST_ASSETS_BILLING_SOURCE")
    cloud: Literal["AZURE", "AWS", "GCP"] = Field("AZURE", validation_alias="COST_ASSETS_CLOUD")
    tier: Literal["STANDARD", "PREMIUM", "ENTERPRISE"] = Field("PREMIUM", validation_alias="COST_ASSETS_TIER")
    prices_path: str | None = Field(None, validation_alias="COST_ASSETS_PRICES")
    duckdb_path: str = Field("data/cost_assets.duckdb", validation_alias="COST_ASSETS_DUCKDB")
    sim_seed: int = Field(7, validation_alias="COST_ASSETS_SIM_SEED")
    sim_scale: str = Field("small", validation_alias="COST_ASSETS_SIM_SCALE")
    sim_days: int = Field(7, ge=1, validation_alias="COST_ASSETS_SIM_DAYS")
    sim_start: dt.date | None = Field(None, validation_alias="COST_ASSETS_SIM_START")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> "Settings":
        upper = {k: v for k, v in environ.items() if v != ""}
        for key in ("COST_ASSETS_CLOUD", "COST_ASSETS_TIER"):
            if key in upper:
                upper[key] = upper[key].upper()
        has_token = any(k in upper for k in ("DATABRICKS_TOKEN", "DATABRICKS_ACCESS_TOKEN",
                                             "DATABRICKS_CLIENT_SECRET"))
        return cls.model_validate({**upper, "has_token": has_token})

    @property
    def simulated_start(self) -> dt.date:
        """The simulated world's first day: by default the last ``sim_days`` complete UTC days."""
        if self.sim_start is not None:
            return self.sim_start
        return dt.datetime.now(dt.UTC).date() - dt.timedelta(days=self.sim_days)
