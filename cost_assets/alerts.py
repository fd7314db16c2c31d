"""Alert delivery: budget, anomaly and run-failure alerts to Slack, Microsoft Teams or the log, once each.

The budget and anomaly sensors build :class:`Alert` values and call :func:`deliver` on every tick::

    sink = sink_from_environ(os.environ)  # COST_ASSETS_ALERT_SINK, COST_ASSETS_ALERT_WEBHOOK
    report = deliver(alerts, sink, Settings.from_environ(os.environ).alert_store_path)
    context.log.info(report.summary())

Sinks
    :class:`SlackSink` posts a Slack incoming-webhook message (``text`` + Block Kit ``blocks``),
    :class:`TeamsSink` a Microsoft Teams *Workflows* webhook message carrying an Adaptive Card, and
    :class:`LogSink` writes one log line (the default when no webhook is set). A webhook post times out
    after ``timeout_s`` (10 s; per connect/read/write phase) and is retried with exponential backoff and
    jitter (``Retry-After`` honoured on 429) on timeouts, connection errors, 429 and 5xx, at most 3 retries
    per call. Another 4xx is not retried within the call (see *rejected* below).

The webhook URL is a secret (whoever holds it can post to the channel). It is read from the environment
when the sink is built, never stored, and never appears in an exception message, a delivery report, the
store or a log line: messages are built without it and scrubbed of it (and of its path, query and token
parts) anyway, in case a receiver echoes it back. ``httpx`` logs every request URL at INFO level; a filter
on the ``httpx`` logger scrubs the webhook URLs of the sinks built in the process from those lines.

Delivery semantics (the outbox)
    :func:`deliver` first records every given alert in a small SQLite file (``COST_ASSETS_ALERT_STORE``,
    default ``data/alerts.sqlite``; not the ledger's DuckDB file, whose writer lock a running pipeline
    holds), one row per ``(identity, escalation)``, in one transaction. An alert already delivered at the
    same or a higher escalation is skipped. Then it sends every pending row, the ones of earlier calls
    too: an alert whose post failed after its retries stays pending and is sent on the next call even if
    the sensor does not pass it again, so a sensor may advance its cursor as soon as ``deliver`` returns.
    Only the highest pending escalation of an identity is sent; lower ones are marked superseded.

    Each send is claimed before the post (state ``sending``, committed) and recorded after it
    (``delivered`` with ``delivered_at``, committed). Concurrent callers (two sensors, or a tick that
    overlaps a slow one) serialize on SQLite's write lock and skip a row another caller has claimed.

    Exactly once, honestly: a webhook call and a SQLite commit cannot share one transaction, so the
    guarantee is *at-least-once with duplicates only after a crash or a lost response*, and never a
    silent loss:

    * a process that dies between a successful post and the record leaves the row ``sending``; once its
      lease (``lease_s``, 5 min) has run out, the next call sends it again, logs a warning and lists it
      in ``DeliveryReport.resent``: the channel may see that alert twice. (Marking it delivered *before*
      the post would turn that duplicate into a silent loss; we prefer the duplicate.)
    * a post that timed out may still have reached the receiver; it is retried, so the channel may see
      it twice too.
    * every post carries ``Idempotency-Key: <hash of identity and escalation>``, the same on every retry
      and re-send. Slack incoming webhooks and Teams Workflows ignore it, so it cannot remove those
      duplicates there; a receiver that honours it (a relay, PagerDuty-style APIs) can.

    *Rejected*: a 400, 413 or 422 means the receiver refused this payload; the same bytes would be
    refused again, so the row is marked ``rejected``, logged as an error and not retried on later
    calls. Other 4xx (401/403/404/410: a wrong, revoked or archived webhook) stay pending, so the
    alerts go out once the webhook is fixed.

    Each call spends at most about ``budget_s`` (30 s) + one ``timeout_s``, so that a sensor tick
    (60 s by default) is not killed mid-delivery: no post or retry starts after the budget, and the
    alerts not tried stay pending (``DeliveryReport.deferred``).
"""

import dataclasses
import datetime as dt
import hashlib
import json
import logging
import math
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import parse_qsl, urlsplit

import httpx

from cost_assets.config import ConfigurationError
from cost_assets.ingest.http import REDACTED, USER_AGENT, RetryPolicy, _error_body, normalize_host

AlertKind = Literal["budget", "anomaly", "run_failure"]
Severity = Literal["info", "warning", "critical"]
KINDS: tuple[str, ...] = ("budget", "anomaly", "run_failure")
SEVERITIES: tuple[str, ...] = ("info", "warning", "critical")

WEBHOOK_VARIABLE = "COST_ASSETS_ALERT_WEBHOOK"
SINK_VARIABLE = "COST_ASSETS_ALERT_SINK"
SINK_KINDS = ("slack", "teams", "log")
TIMEOUT_S = 10.0
RETRIES = 3  # retries per post, after the first attempt
LEASE_S = 300.0
BUDGET_S = 30.0
MAX_DETAILS = 10  # contributor lines shown; the rest summarized as "… and N more"
REJECTED_STATUSES = frozenset({400, 413, 422})  # the payload was refused: sending it again cannot help

_LOG = logging.getLogger(__name__)


def webhook_retry() -> RetryPolicy:
    """The default webhook retry policy: 3 retries, backoff 0.5 s, 1 s, 2 s (capped at 4 s) plus ≤ 0.5 s jitter."""
    return RetryPolicy(
        max_attempts=1 + RETRIES, retry_timeout_s=BUDGET_S, backoff_s=0.5, max_backoff_s=4.0, jitter_s=0.5
    )


# --- the alert ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Alert:
    """One alert. ``identity`` is stable across ticks (``budget:finance-weekly:2026-12-01:80``, an anomaly
    id): the store delivers each ``(identity, escalation)`` once, and a re-alert of the same identity goes
    out only when ``escalation`` grows. ``details`` are ``(label, value)`` lines, e.g. the top
    contributors; a numeric value is shown as dollars. ``url`` links to the asset in the Dagster UI."""

    identity: str
    kind: AlertKind
    title: str
    scope: str
    actual_usd: float
    expected_usd: float | None = None
    impact_usd: float | None = None
    details: Sequence[tuple[str, str | float]] = ()
    url: str | None = None
    severity: Severity = "warning"
    escalation: int = 0

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.identity, str) or not self.identity.strip():
            problems.append("identity must be a non-empty string")
        if self.kind not in KINDS:
            problems.append(f"kind={self.kind!r}: allowed: {', '.join(KINDS)}")
        if self.severity not in SEVERITIES:
            problems.append(f"severity={self.severity!r}: allowed: {', '.join(SEVERITIES)}")
        if isinstance(self.escalation, bool) or not isinstance(self.escalation, int) or self.escalation < 0:
            problems.append(f"escalation={self.escalation!r}: must be an integer ≥ 0")
        for name in ("actual_usd", "expected_usd", "impact_usd"):
            value = getattr(self, name)
            if (value is not None or name == "actual_usd") and not _is_number(value):
                problems.append(f"{name}={value!r}: must be a finite number")
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            problems.append(f"url={self.url!r}: must be an http(s) URL")
        try:
            details = tuple((str(label), value if _is_number(value) else str(value)) for label, value in self.details)
        except (TypeError, ValueError):
            problems.append("details must be (label, value) pairs")
            details = ()
        if problems:
            raise ValueError(f"invalid alert {self.identity!r}: " + "; ".join(problems))
        object.__setattr__(self, "details", details)

    @property
    def idempotency_key(self) -> str:
        """The same for every post of this ``(identity, escalation)``: retries, re-sends after a crash."""
        return hashlib.sha256(f"{self.identity}\n{self.escalation}".encode()).hexdigest()[:32]

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "Alert":
        data = json.loads(text)
        data["details"] = [tuple(pair) for pair in data.get("details", ())]
        return cls(**data)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _usd(value: float) -> str:
    return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"


def _signed_usd(value: float) -> str:
    return f"+{_usd(value)}" if value > 0 else _usd(value)


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """Scope, actual, expected, impact and severity, as (label, text); absent values left out."""
    facts = [("Scope", alert.scope), ("Actual", _usd(alert.actual_usd))]
    if alert.expected_usd is not None:
        facts.append(("Expected", _usd(alert.expected_usd)))
    if alert.impact_usd is not None:
        facts.append(("Impact", _signed_usd(alert.impact_usd)))
    facts.append(("Severity", alert.severity))
    return facts


def _details(alert: Alert) -> list[tuple[str, str]]:
    """At most :data:`MAX_DETAILS` lines, numbers as dollars, then ``… and N more``."""
    lines = [(label, _usd(v) if _is_number(v) else str(v)) for label, v in alert.details[:MAX_DETAILS]]
    if len(alert.details) > MAX_DETAILS:
        lines.append(("…", f"and {len(alert.details) - MAX_DETAILS} more"))
    return lines


def _footer(alert: Alert) -> str:
    escalation = f" · escalation {alert.escalation}" if alert.escalation else ""
    return f"{alert.kind} · {alert.identity}{escalation}"


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary_line(alert: Alert) -> str:
    """One plain line: severity, title, scope, actual vs expected, impact, the top contributors, the link."""
    text = f"[{alert.severity}] {alert.title}: {alert.scope}: actual {_usd(alert.actual_usd)}"
    if alert.expected_usd is not None:
        text += f" vs expected {_usd(alert.expected_usd)}"
    if alert.impact_usd is not None:
        text += f", impact {_signed_usd(alert.impact_usd)}"
    if alert.details:
        text += "; top: " + ", ".join(f"{label} {value}" for label, value in _details(alert))
    if alert.url:
        text += f"; {alert.url}"
    return text


# --- payloads ----------------------------------------------------------------------------------------------

SLACK_ICONS = {"info": ":information_source:", "warning": ":warning:", "critical": ":rotating_light:"}
TEAMS_COLORS = {"info": "Default", "warning": "Warning", "critical": "Attention"}


def _slack_escape(text: str) -> str:
    """Slack mrkdwn control characters (``&``, ``<``, ``>``) as entities, so names cannot inject links."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_link(url: str, label: str) -> str:
    safe = url.replace("&", "&amp;").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")
    return f"<{safe}|{label}>"


def slack_payload(alert: Alert) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (the notification, and all that Slack-compatible
    receivers without Block Kit show, so it carries every essential) and ``blocks``: a header, a section
    whose fields are scope / actual / expected / impact / severity, the top contributors, the link to
    the Dagster UI and a context line (kind, identity, escalation). Within Block Kit's limits (header
    150 characters, field 2,000, section text 3,000)."""
    e = _slack_escape
    text = f"{SLACK_ICONS[alert.severity]} {e(summary_line(dataclasses.replace(alert, url=None)))}"
    if alert.url:
        text += f" {_slack_link(alert.url, 'Open in Dagster')}"
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": _clip(f"{SLACK_ICONS[alert.severity]} {alert.title}", 150)},
        },
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": _clip(f"*{label}*\n{e(value)}", 2000)} for label, value in _facts(alert)
            ],
        },
    ]
    if alert.details:
        lines = "\n".join(f"• {e(label)}: {e(value)}" for label, value in _details(alert))
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*Top contributors*\n{lines}", 3000)}}
        )
    if alert.url:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_link(alert.url, "Open in Dagster")}}
        )
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _clip(e(_footer(alert)), 2000)}]})
    return {"text": _clip(text, 3000), "blocks": blocks}


def teams_payload(alert: Alert) -> dict[str, Any]:
    """A Teams Workflows webhook message: one Adaptive Card 1.4 attachment with the title (coloured by
    severity), a FactSet scope / actual / expected / impact / severity, a FactSet of the top
    contributors, a subtle footer (kind, identity, escalation) and an ``Action.OpenUrl`` to Dagster."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": alert.title,
            "size": "Medium",
            "weight": "Bolder",
            "color": TEAMS_COLORS[alert.severity],
            "wrap": True,
        },
        {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in _facts(alert)]},
    ]
    if alert.details:
        body.append(
            {"type": "TextBlock", "text": "Top contributors", "weight": "Bolder", "spacing": "Medium", "wrap": True}
        )
        body.append(
            {"type": "FactSet", "facts": [{"title": label, "value": value} for label, value in _details(alert)]}
        )
    body.append({"type": "TextBlock", "text": _footer(alert), "isSubtle": True, "size": "Small", "wrap": True})
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "msteams": {"width": "Full"},
        "body": body,
    }
    if alert.url:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in Dagster", "url": alert.url}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# --- sinks -------------------------------------------------------------------------------------------------


class DeliveryError(RuntimeError):
    """A post that failed for good (after its retries, or at once for a 4xx). The message names the sink,
    the HTTP status and the receiver's reason; never the webhook URL. ``permanent``: the receiver refused
    the payload itself (400/413/422), so sending it again cannot help."""

    def __init__(self, message: str, *, status: int | None, attempts: int, permanent: bool = False):
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.permanent = permanent


class Sink(Protocol):
    """Where alerts go. ``send`` returns the number of attempts it made, or raises :class:`DeliveryError`;
    it starts no attempt and sleeps past ``deadline`` (a ``time.monotonic()`` value)."""

    name: str

    def send(self, alert: Alert, *, deadline: float | None = None) -> int: ...


class _RedactingFilter(logging.Filter):
    """Scrubs registered secrets from the records of a logger (``httpx`` logs every request URL)."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            self._secrets = tuple(sorted(set(self._secrets) | set(secrets), key=len, reverse=True))

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self._secrets
        if secrets:
            try:
                message = record.getMessage()
            except Exception:  # a malformed record: not ours to fix, but never let it through unscrubbed
                message = str(record.msg)
            clean = _redact(message, secrets)
            if clean != message:
                record.msg, record.args = clean, None
        return True


_HTTP_LOG_FILTER = _RedactingFilter()


def _guard_http_logs(secrets: Iterable[str]) -> None:
    """``httpx`` logs ``HTTP Request: POST <url> …`` at INFO. (httpcore's DEBUG lines name host and port only.)"""
    _HTTP_LOG_FILTER.add(secrets)
    logger = logging.getLogger("httpx")
    if _HTTP_LOG_FILTER not in logger.filters:
        logger.addFilter(_HTTP_LOG_FILTER)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text


def _url_secrets(url: str) -> tuple[str, ...]:
    """The URL, as given and as httpx spells it, its path, query, query values and token-like path segments,
    longest first (a fragment shorter than 8 characters is not scrubbed: it would garble every message)."""
    parts = urlsplit(url)
    found = {url, url.strip(), parts.path, parts.query}
    with suppress(Exception):  # a URL httpx cannot parse is one it would not post to either
        found.add(str(httpx.URL(url.strip())))  # how httpx spells it in its log line
    found |= {value for _, value in parse_qsl(parts.query)}
    found |= {segment for segment in parts.path.split("/") if len(segment) >= 16}
    found |= {parts.password or ""}
    return tuple(sorted((s for s in found if len(s) >= 8), key=len, reverse=True))


def _check_webhook(url: str) -> None:
    """An http(s) URL with a host; plain http only to loopback. Messages never contain the URL."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("the alert webhook is not an http(s) URL with a host (the value is secret, not shown)")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    try:
        normalize_host(f"{parts.scheme}://{host}")
    except ValueError:
        raise ValueError(
            "the alert webhook uses plain http; only https:// is allowed (http only for 127.0.0.1/localhost)"
        ) from None


class WebhookSink:
    """A webhook POST of a JSON payload with timeouts, retries and secret-free errors; subclasses say what
    payload. ``retry``: :func:`webhook_retry` by default (``max_attempts`` counts the first attempt;
    ``retry_timeout_s`` bounds the whole post). ``sleep`` and ``rng`` are injectable for tests."""

    name = "webhook"

    def __init__(
        self,
        webhook_url: str,
        *,
        timeout_s: float = TIMEOUT_S,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ):
        _check_webhook(webhook_url)
        self._url = webhook_url.strip()
        self._secrets = _url_secrets(webhook_url)
        _guard_http_logs(self._secrets)
        self.timeout_s = timeout_s
        self.retry = retry or webhook_retry()
        self.sleep = sleep
        self.rng = rng or random.Random()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(webhook_url={REDACTED!r}, timeout_s={self.timeout_s:g})"

    def payload(self, alert: Alert) -> dict[str, Any]:
        raise NotImplementedError

    def redact(self, text: str) -> str:
        return _redact(text, self._secrets)

    def send(self, alert: Alert, *, deadline: float | None = None) -> int:
        """POST the alert's payload; the number of attempts on a 2xx, else :class:`DeliveryError`."""
        body = self.payload(alert)
        headers = {"User-Agent": USER_AGENT, "Idempotency-Key": alert.idempotency_key}
        give_up_at = time.monotonic() + self.retry.retry_timeout_s
        if deadline is not None:
            give_up_at = min(give_up_at, deadline)
        attempt = 0
        with httpx.Client(timeout=httpx.Timeout(self.timeout_s), follow_redirects=False) as http:
            while True:
                attempt += 1
                try:
                    response = http.post(self._url, json=body, headers=headers)
                except httpx.TransportError as e:  # refused, reset, timed out, or closed mid-body
                    kind = "timed out" if isinstance(e, httpx.TimeoutException) else "connection error"
                    status, problem, delay = None, f"{kind} ({type(e).__name__})", self.retry.backoff(attempt, self.rng)
                else:
                    status = response.status_code
                    if 200 <= status < 300:
                        return attempt
                    problem = self._problem(response)
                    if status != 429 and status < 500:
                        raise DeliveryError(
                            self.redact(f"{self.name} webhook refused the alert: {problem}; not retried"),
                            status=status,
                            attempts=attempt,
                            permanent=status in REJECTED_STATUSES,
                        )
                    delay = self.retry.retry_after(response, self.rng)
                    delay = self.retry.backoff(attempt, self.rng) if delay is None else delay
                if attempt >= self.retry.max_attempts or time.monotonic() + delay > give_up_at:
                    raise DeliveryError(
                        self.redact(f"{self.name} webhook post failed: {problem}; gave up after {attempt} attempt(s)"),
                        status=status,
                        attempts=attempt,
                    ) from None
                self.sleep(delay)

    def _problem(self, response: httpx.Response) -> str:
        """``HTTP 400 code: message`` from Slack's plain text, Power Automate's ``{"error": {code, message}}``
        or a Databricks-style body; scrubbed of the webhook before it is shortened."""
        text = f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            return text + " (a redirect; webhook redirects are not followed)"
        try:
            error = response.json().get("error")
        except (ValueError, AttributeError):
            error = None
        if isinstance(error, dict):
            code = self.redact(str(error.get("code") or "")) or None
            message = self.redact(str(error.get("message") or ""))[:500]
        else:
            code, message = _error_body(response, self.redact)
        text += f" {code}" if code else ""
        return text + (f": {message.rstrip('. ')}" if message else "")


class SlackSink(WebhookSink):
    """A Slack incoming webhook (https://hooks.slack.com/services/…), or any Slack-compatible one
    (Mattermost, Rocket.Chat: they show ``text``). Payload: :func:`slack_payload`."""

    name = "slack"

    def payload(self, alert: Alert) -> dict[str, Any]:
        return slack_payload(alert)


class TeamsSink(WebhookSink):
    """A Microsoft Teams **Workflows** webhook: the URL of a Power Automate flow "When a Teams webhook
    request is received" (template "Post to a channel when a webhook request is received"); it answers
    202 and posts the card. Payload: :func:`teams_payload`.

    Office 365 connectors (the old "Incoming Webhook" connector, ``…webhook.office.com/webhookb2/…``,
    MessageCard payloads) are being retired by Microsoft; this sink does not target them. Create a
    Workflows webhook instead and use its URL (it carries its signature, ``sig=…``, in the query: secret)."""

    name = "teams"

    def payload(self, alert: Alert) -> dict[str, Any]:
        return teams_payload(alert)


class LogSink:
    """Writes each alert as one log line: ``info`` at INFO, ``warning`` at WARNING, ``critical`` at ERROR.
    ``logger``: a :class:`logging.Logger` or Dagster's ``context.log``; default ``cost_assets.alerts``."""

    name = "log"
    LEVELS: Mapping[str, str] = {"info": "info", "warning": "warning", "critical": "error"}

    def __init__(self, logger: Any = None):
        self.logger = logger or _LOG

    def __repr__(self) -> str:
        return "LogSink()"

    def send(self, alert: Alert, *, deadline: float | None = None) -> int:
        getattr(self.logger, self.LEVELS[alert.severity])(f"alert {summary_line(alert)}")
        return 1


def sink_from_environ(environ: Mapping[str, str], *, logger: Any = None, **options: Any) -> Sink:
    """The sink ``COST_ASSETS_ALERT_SINK`` names (``slack``, ``teams`` or ``log``; default ``slack`` when
    ``COST_ASSETS_ALERT_WEBHOOK`` is set, else ``log``) for the webhook ``COST_ASSETS_ALERT_WEBHOOK``.
    ``options`` go to the webhook sink (``timeout_s``, ``retry``…). Read at run time; the webhook is
    kept only inside the sink. :class:`~cost_assets.config.ConfigurationError` names the variable to fix
    and never shows the webhook."""
    webhook = (environ.get(WEBHOOK_VARIABLE) or "").strip() or None
    given = (environ.get(SINK_VARIABLE) or "").strip()
    kind = given.lower() or ("slack" if webhook else "log")
    if kind not in SINK_KINDS:
        raise ConfigurationError([f"{SINK_VARIABLE}={given!r}: allowed: {', '.join(SINK_KINDS)}"])
    if kind == "log":
        return LogSink(logger)
    if webhook is None:
        raise ConfigurationError(
            [f"{SINK_VARIABLE}={given!r}: needs {WEBHOOK_VARIABLE}, the incoming webhook URL to post to"]
        )
    try:
        return (SlackSink if kind == "slack" else TeamsSink)(webhook, **options)
    except ValueError as e:
        raise ConfigurationError([f"{WEBHOOK_VARIABLE}={REDACTED}: {e}"]) from None


# --- the store ---------------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    identity TEXT NOT NULL,
    escalation INTEGER NOT NULL,
    kind TEXT NOT NULL,
    alert TEXT NOT NULL,            -- the Alert as JSON; rendered by the sink when sent
    state TEXT NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed', 'rejected', 'superseded')),
    enqueued_at TEXT NOT NULL,      -- UTC, ISO 8601
    claimed_at REAL,                -- epoch seconds the current send started (the lease of a 'sending' row)
    sends INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,                -- redacted
    sink TEXT,
    delivered_at TEXT,              -- UTC, ISO 8601
    PRIMARY KEY (identity, escalation)
)
"""
ELIGIBLE = ("pending", "failed", "sending")


@dataclass
class _Claim:
    outcome: Literal["claimed", "superseded", "in_flight", "unreadable", "gone"]
    alert: Alert | None = None
    resent: bool = False


class AlertStore:
    """The outbox: a SQLite file of ``(identity, escalation, state, delivered_at, …)``. Each call of
    :func:`deliver` opens one short-lived connection; every change is its own ``BEGIN IMMEDIATE``
    transaction (rollback journal, ``synchronous=FULL``: a committed record survives a crash)."""

    def __init__(self, path: str | Path, *, busy_timeout_s: float = 30.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s

    def __repr__(self) -> str:
        return f"AlertStore({str(self.path)!r})"

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)) as con:
            con.execute("PRAGMA synchronous = FULL")
            con.execute(SCHEMA)
            yield con

    def rows(self) -> list[dict[str, Any]]:
        """Every row but the alert JSON, oldest first (for inspection and tests)."""
        with self.connect() as con:
            cursor = con.execute("SELECT * FROM alert_outbox ORDER BY rowid")
            names = [column[0] for column in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [{k: v for k, v in row.items() if k != "alert"} for row in rows]

    def enqueue(self, con: sqlite3.Connection, alerts: Iterable[Alert], now: float) -> list[str]:
        """Records the alerts as pending, in one transaction; returns the identities skipped because they
        were delivered at the same or a higher escalation (or refused as ``rejected``) already."""
        latest: dict[str, Alert] = {}
        for alert in alerts:
            if alert.identity not in latest or alert.escalation >= latest[alert.identity].escalation:
                latest[alert.identity] = alert
        skipped = []
        with _transaction(con):
            for alert in latest.values():
                key = (alert.identity, alert.escalation)
                (delivered,) = con.execute(
                    "SELECT MAX(escalation) FROM alert_outbox WHERE identity = ? AND state = 'delivered'",
                    (alert.identity,),
                ).fetchone()
                row = con.execute(
                    "SELECT state FROM alert_outbox WHERE identity = ? AND escalation = ?", key
                ).fetchone()
                if (delivered is not None and delivered >= alert.escalation) or (row and row[0] == "rejected"):
                    skipped.append(alert.identity)
                    continue
                if row is None:
                    con.execute(
                        "INSERT INTO alert_outbox (identity, escalation, kind, alert, state, enqueued_at)"
                        " VALUES (?, ?, ?, ?, 'pending', ?)",
                        (*key, alert.kind, alert.to_json(), _iso(now)),
                    )
                elif row[0] in ("pending", "failed"):  # not sent yet: send the newest figures
                    con.execute(
                        "UPDATE alert_outbox SET alert = ?, kind = ? WHERE identity = ? AND escalation = ?",
                        (alert.to_json(), alert.kind, *key),
                    )
                con.execute(
                    "UPDATE alert_outbox SET state = 'superseded'"
                    " WHERE identity = ? AND escalation < ? AND state IN ('pending', 'failed')",
                    key,
                )
        return skipped

    def candidates(self, con: sqlite3.Connection) -> list[tuple[str, int]]:
        """Rows that may need a send, oldest first (:meth:`claim` decides under the write lock)."""
        return con.execute(
            "SELECT identity, escalation FROM alert_outbox WHERE state IN (?, ?, ?) ORDER BY rowid", ELIGIBLE
        ).fetchall()

    def claim(self, con: sqlite3.Connection, identity: str, escalation: int, now: float, lease_s: float) -> _Claim:
        """Marks the row ``sending`` (committed) unless it was delivered, superseded or is being sent by
        another caller whose lease has not run out. A ``sending`` row past its lease is a send that was
        interrupted after it was claimed: claimed again, with ``resent=True``."""
        key = (identity, escalation)
        with _transaction(con):
            row = con.execute(
                "SELECT state, claimed_at, alert FROM alert_outbox WHERE identity = ? AND escalation = ?", key
            ).fetchone()
            if row is None or row[0] not in ELIGIBLE:
                return _Claim("gone")
            state, claimed_at, text = row
            higher = con.execute(
                "SELECT 1 FROM alert_outbox WHERE identity = ? AND escalation > ?"
                " AND state IN ('pending', 'failed', 'sending', 'delivered') LIMIT 1",
                key,
            ).fetchone()
            if higher:
                con.execute("UPDATE alert_outbox SET state = 'superseded' WHERE identity = ? AND escalation = ?", key)
                return _Claim("superseded")
            if state == "sending" and claimed_at is not None and now - claimed_at < lease_s:
                return _Claim("in_flight")
            try:
                alert = Alert.from_json(text)
            except (ValueError, TypeError) as e:  # written by an incompatible version: sending cannot help
                con.execute(
                    "UPDATE alert_outbox SET state = 'rejected', last_error = ? WHERE identity = ? AND escalation = ?",
                    (f"unreadable alert: {type(e).__name__}: {e}", *key),
                )
                return _Claim("unreadable")
            con.execute(
                "UPDATE alert_outbox SET state = 'sending', claimed_at = ?, sends = sends + 1"
                " WHERE identity = ? AND escalation = ?",
                (now, *key),
            )
        return _Claim("claimed", alert, resent=state == "sending")

    def record(
        self,
        con: sqlite3.Connection,
        identity: str,
        escalation: int,
        state: Literal["delivered", "failed", "rejected"],
        now: float,
        *,
        sink: str,
        error: str | None = None,
    ) -> None:
        with _transaction(con):
            con.execute(
                "UPDATE alert_outbox SET state = ?, claimed_at = NULL, sink = ?, last_error = ?,"
                " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END"
                " WHERE identity = ? AND escalation = ?",
                (state, sink, error, state, _iso(now), identity, escalation),
            )


@contextmanager
def _transaction(con: sqlite3.Connection) -> Iterator[None]:
    """``BEGIN IMMEDIATE``: takes the write lock at once, so concurrent callers serialize, not deadlock."""
    con.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def _iso(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC).isoformat(timespec="seconds")


# --- delivery ----------------------------------------------------------------------------------------------


@dataclass
class DeliveryReport:
    """What one :func:`deliver` call did, by identity.

    ``delivered``: posted now. ``skipped``: given, but delivered at this or a higher escalation earlier
    (or rejected earlier). ``failed``: identity → the (redacted) error; still pending and sent again on
    the next call, except those also in ``rejected`` (the receiver refused the payload: never retried).
    ``resent``: delivered or tried again after an interrupted earlier send, so possibly a duplicate.
    ``in_flight``: being sent by another caller. ``superseded``: a higher escalation replaced it.
    ``deferred``: not tried, the time budget ran out; still pending. ``attempts``: HTTP requests made."""

    delivered: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    rejected: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    in_flight: list[str] = field(default_factory=list)
    superseded: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    attempts: int = 0

    @property
    def pending(self) -> list[str]:
        """Alerts a later call still has to send (failed but not rejected, deferred, in flight elsewhere)."""
        failed = [identity for identity in self.failed if identity not in self.rejected]
        return failed + self.deferred + self.in_flight

    def summary(self) -> str:
        parts = {
            "delivered": len(self.delivered),
            "skipped (already delivered)": len(self.skipped),
            "failed, pending": len(self.failed) - len(self.rejected),
            "rejected": len(self.rejected),
            "re-sent after an interrupted send": len(self.resent),
            "in flight elsewhere": len(self.in_flight),
            "superseded": len(self.superseded),
            "deferred": len(self.deferred),
        }
        text = ", ".join(f"{n} {label}" for label, n in parts.items() if n) or "no alerts"
        return f"alerts: {text} ({self.attempts} request(s))"


def deliver(
    alerts: Iterable[Alert],
    sink: Sink,
    store: AlertStore | str | Path,
    *,
    lease_s: float = LEASE_S,
    budget_s: float = BUDGET_S,
    clock: Callable[[], float] = time.time,
    logger: Any = None,
) -> DeliveryReport:
    """Records ``alerts`` in the outbox ``store`` and sends every pending one (these and earlier calls'
    failures) through ``sink``, each ``(identity, escalation)`` once; see the module docstring for the
    semantics. ``clock``: epoch seconds, for the lease and the timestamps. ``logger``: a logger or
    Dagster's ``context.log`` (default ``cost_assets.alerts``). Never raises for a failed post: the report
    says what happened; a SQLite error (the file unwritable, locked longer than 30 s) does raise."""
    store = store if isinstance(store, AlertStore) else AlertStore(store)
    log = logger or _LOG
    redact = getattr(sink, "redact", lambda text: text)
    report = DeliveryReport()
    stop_at = time.monotonic() + budget_s
    with store.connect() as con:
        report.skipped = store.enqueue(con, alerts, clock())
        for identity, escalation in store.candidates(con):
            if time.monotonic() >= stop_at:
                report.deferred.append(identity)
                continue
            claim = store.claim(con, identity, escalation, clock(), lease_s)
            if claim.outcome != "claimed":
                if claim.outcome in ("superseded", "in_flight"):
                    getattr(report, claim.outcome).append(identity)
                elif claim.outcome == "unreadable":
                    report.rejected.append(identity)
                    report.failed[identity] = "the stored alert is unreadable (see the store's last_error)"
                    log.error(f"alert {identity} (escalation {escalation}): the stored alert is unreadable; not sent")
                continue
            if claim.resent:
                report.resent.append(identity)
                log.warning(
                    f"alert {identity} (escalation {escalation}): an earlier send was interrupted before it was "
                    "recorded; sending it again, the channel may show it twice"
                )
            try:
                report.attempts += sink.send(claim.alert, deadline=stop_at)
            except DeliveryError as e:
                report.attempts += e.attempts
                state = "rejected" if e.permanent else "failed"
                _failed(store, con, report, log, identity, escalation, state, str(e), sink.name, clock())
            except Exception as e:  # a bug rendering one alert must not block the others
                message = redact(f"{sink.name}: {type(e).__name__}: {e}")
                _failed(store, con, report, log, identity, escalation, "failed", message, sink.name, clock())
            else:
                store.record(con, identity, escalation, "delivered", clock(), sink=sink.name)
                report.delivered.append(identity)
    return report


def _failed(
    store: AlertStore,
    con: sqlite3.Connection,
    report: DeliveryReport,
    log: Any,
    identity: str,
    escalation: int,
    state: Literal["failed", "rejected"],
    message: str,
    sink_name: str,
    now: float,
) -> None:
    store.record(con, identity, escalation, state, now, sink=sink_name, error=message)
    report.failed[identity] = message
    if state == "rejected":
        report.rejected.append(identity)
        log.error(f"alert {identity} (escalation {escalation}) rejected, not retried: {message}")
    else:
        log.warning(f"alert {identity} (escalation {escalation}) not delivered, retried next time: {message}")
