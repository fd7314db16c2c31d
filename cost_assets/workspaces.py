"""The account's workspaces: the file that lists them (``COST_ASSETS_WORKSPACES``), validated before anything runs.

A workspaces file is YAML with one list, ``workspaces``; each entry has

``name``
    unique; names the workspace in logs, metadata and failures.
``host``
    the workspace URL (https; plain http only for 127.0.0.1/localhost, e.g. the mock server).
``workspace_id``
    the numeric workspace id, unique. The bill names workspaces by id only, so the id is what tells a
    configured workspace's bill rows from those of a workspace nobody listed (``workspace_not_configured``).
``token_env``, or ``client_id_env`` and ``client_secret_env``
    the *names* of the environment variables holding the credentials (a personal access token, or an
    OAuth M2M service principal); never the secrets themselves. Each named variable must be set.
``cloud``
    ``azure``, ``aws`` or ``gcp`` (any case).
``region`` (optional)
    shown beside the workspace in the raw assets' metadata.
``warehouse_id`` (optional)
    the workspace's SQL warehouse for its ``system.serving`` tables (as ``DATABRICKS_WAREHOUSE_ID``).
``rate_limit`` (optional)
    client-side requests per second for this workspace (default ``DATABRICKS_RATE_LIMIT``).

Every problem is reported at once, one line each, naming the file, the entry and the field
(``file: workspace 'etl' (#2): token_env: ...``); a variable that is not set is named, its value never read
into a message. Pure: no Dagster (``definitions.py`` turns entries into resources).
"""

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cost_assets.ingest.http import normalize_host
from cost_assets.prices import load_strict_yaml

ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
CREDENTIAL_FIELDS = ("token_env", "client_id_env", "client_secret_env")


class WorkspacesError(ValueError):
    """A workspaces file is invalid: one line per problem, ``file: workspace 'name' (#n): field: problem``."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("invalid workspaces file:\n" + "\n".join(f"  - {p}" for p in problems))


class WorkspaceEntry(BaseModel):
    """One workspace of the account, as the file lists it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1)
    host: str
    workspace_id: str
    cloud: Literal["AZURE", "AWS", "GCP"]
    region: str | None = None
    token_env: str | None = Field(None, pattern=ENV_NAME)
    client_id_env: str | None = Field(None, pattern=ENV_NAME)
    client_secret_env: str | None = Field(None, pattern=ENV_NAME)
    warehouse_id: str | None = None
    rate_limit: float | None = Field(None, ge=0)

    @field_validator("workspace_id", mode="before")
    @classmethod
    def _numeric_id(cls, value: object) -> object:
        text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
        if not isinstance(text, str) or not text.isdigit():
            raise ValueError(f"must be the numeric workspace id, got {value!r}")
        return text

    @field_validator("cloud", mode="before")
    @classmethod
    def _any_case(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("host")
    @classmethod
    def _https(cls, value: str) -> str:
        return normalize_host(value)

    @model_validator(mode="after")
    def _one_credential(self) -> "WorkspaceEntry":
        oauth = (self.client_id_env, self.client_secret_env)
        if self.token_env and any(oauth):
            raise ValueError("give token_env, or client_id_env and client_secret_env, not both")
        if not self.token_env and not all(oauth):
            raise ValueError("credentials: give token_env, or client_id_env and client_secret_env")
        return self

    @property
    def credential_variables(self) -> list[str]:
        """The names of the variables holding this workspace's credentials."""
        return [v for v in (getattr(self, f) for f in CREDENTIAL_FIELDS) if v]


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workspaces: list[object] = Field(min_length=1)


def _line(file: str, label: str, error: Mapping) -> str:
    field = ".".join(map(str, error.get("loc") or ())) or "entry"
    message = str(error["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
    return f"{file}: {label}: {field}: {message}"


def _unset_variables(item: Mapping, environ: Mapping[str, str], where: str) -> list[str]:
    """One line per credential field of ``item`` naming a well-formed variable that ``environ`` does not set."""
    return [
        f"{where}: {field}: the environment variable {variable} is not set"
        for field in CREDENTIAL_FIELDS
        if isinstance(variable := item.get(field), str)
        and re.fullmatch(ENV_NAME, variable)
        and not environ.get(variable)
    ]


def parse(text: str, file: str, environ: Mapping[str, str]) -> list[WorkspaceEntry]:
    """The workspaces of ``text`` (the contents of ``file``), with their credential variables checked against
    ``environ``; :class:`WorkspacesError` lists every problem."""
    data = load_strict_yaml(text, file, WorkspacesError)
    try:
        raw = _File.model_validate(data if isinstance(data, dict) else {"workspaces": data}).workspaces
    except ValidationError as exc:
        raise WorkspacesError([_line(file, "the file", e) for e in exc.errors()]) from None
    problems: list[str] = []
    entries: list[WorkspaceEntry] = []
    names: set[str] = set()
    ids: dict[str, str] = {}
    for i, item in enumerate(raw, start=1):
        name = item.get("name") if isinstance(item, dict) else None
        label = f"workspace {name!r} (#{i})" if name else f"workspace #{i}"
        if not isinstance(item, dict):
            problems.append(f"{file}: {label}: entry: must be a mapping (name, host, workspace_id, ...)")
            continue
        # Unset variables are named even when the entry has other problems: one pass shows them all.
        unset = _unset_variables(item, environ, f"{file}: {label}")
        try:
            entry = WorkspaceEntry.model_validate(item)
        except ValidationError as exc:
            problems += [_line(file, label, e) for e in exc.errors()] + unset
            continue
        if entry.name in names:
            problems.append(f"{file}: {label}: name: another workspace has the same name")
        if entry.workspace_id in ids:
            problems.append(f"{file}: {label}: workspace_id: {ids[entry.workspace_id]!r} has the same id")
        names.add(entry.name)
        ids.setdefault(entry.workspace_id, entry.name)
        problems += unset
        entries.append(entry)
    if problems:
        raise WorkspacesError(problems)
    return entries


def load(path: str | Path, environ: Mapping[str, str]) -> list[WorkspaceEntry]:
    """The workspaces of the file at ``path`` (credential variables looked up in ``environ``)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise WorkspacesError([f"{path}: cannot read the workspaces file: {exc.strerror or exc}"]) from None
    return parse(text, str(path), environ)
