"""Alert delivery (cost_assets/alerts.py) against a real webhook receiver on 127.0.0.1: the Slack and Teams
payloads, once per (identity, escalation) across ticks, retries (5xx, 429, timeouts) and none on 4xx, a
crash between post and record, and the webhook URL (a secret) never in a log line or an error."""

import json
import logging
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from cost_assets.alerts import (
    LEASE_S,
    Alert,
    AlertStore,
    DeliveryError,
    LogSink,
    SlackSink,
    TeamsSink,
    deliver,
    sink_from_environ,
    slack_payload,
)
from cost_assets.config import ConfigurationError, Settings
from cost_assets.ingest.http import RetryPolicy

pytestmark = pytest.mark.e2e  # starts an HTTP server

SECRET_TOKEN = "xoxSECRETtoken0123456789abcdef"
SLACK_PATH = f"/services/T0FAKE0001/B0FAKE0001/{SECRET_TOKEN}"
TEAMS_PATH = f"/workflows/0fake0workflow/triggers/manual/paths/invoke?api-version=1&sv=1.0&sig={SECRET_TOKEN}"
DAGSTER_URL = "http://127.0.0.1:3000/assets/mart/budget_status?partition=2026-12-01&view=x"
FAST = RetryPolicy(max_attempts=4, retry_timeout_s=10, backoff_s=0.01, max_backoff_s=0.05, jitter_s=0)


@dataclass
class Reply:
    status: int = 200
    delay_s: float = 0.0
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Seen:
    n: int
    path: str
    headers: dict[str, str]
    body: dict
    status: int


class Receiver:
    """A webhook receiver: records every POST and answers what ``respond(n, path)`` says (n from 1)."""

    def __init__(self, respond: Callable[[int, str], Reply] | None = None):
        self.respond = respond or (lambda n, path: Reply())
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    n = len(receiver.seen) + 1
                    reply = receiver.respond(n, self.path)
                    receiver.seen.append(Seen(n, self.path, dict(self.headers), body, reply.status))
                time.sleep(reply.delay_s)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:  # the client timed out and went away
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str = SLACK_PATH) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    @property
    def accepted_keys(self) -> Counter:
        """Idempotency keys of the posts answered 2xx."""
        return Counter(s.headers["Idempotency-Key"] for s in self.seen if 200 <= s.status < 300)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(respond: Callable[[int, str], Reply] | None = None) -> Receiver:
        started.append(Receiver(respond))
        return started[-1]

    yield start
    for r in started:
        r.close()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "alerts.sqlite"


def budget_alert(identity: str = "budget:finance-weekly:2026-12-01:80", escalation: int = 0, **kw) -> Alert:
    values = {
        "kind": "budget",
        "title": "Budget finance-weekly at 80%",
        "scope": "team=finance",
        "actual_usd": 812.4,
        "expected_usd": 1000.0,
        "impact_usd": 312.4,
        "details": [("job nightly-etl", 400.0), ("warehouse bi", "$212.40")],
        "url": DAGSTER_URL,
        "severity": "warning",
        **kw,
    }
    return Alert(identity=identity, escalation=escalation, **values)


def states(store: Path) -> list[tuple[str, int, str]]:
    return [(r["identity"], r["escalation"], r["state"]) for r in AlertStore(store).rows()]


# --- payloads ----------------------------------------------------------------------------------------------


def test_slack_payload_shape(receiver, store):
    r = receiver()
    alert = budget_alert()
    report = deliver([alert], SlackSink(r.url(), retry=FAST), store)
    assert report.delivered == [alert.identity] and report.attempts == 1
    (seen,) = r.seen
    assert seen.path == SLACK_PATH
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Idempotency-Key"] == alert.idempotency_key
    body = seen.body
    assert set(body) == {"text", "blocks"}
    for part in ("Budget finance-weekly at 80%", "team=finance", "$812.40", "$1,000.00", "+$312.40", "nightly-etl"):
        assert part in body["text"]
    assert (
        "<http://127.0.0.1:3000/assets/mart/budget_status?partition=2026-12-01&amp;view=x|Open in Dagster>"
        in (body["text"])
    )
    blocks = body["blocks"]
    assert [b["type"] for b in blocks] == ["header", "section", "section", "section", "context"]
    assert blocks[0]["text"]["type"] == "plain_text" and "Budget finance-weekly at 80%" in blocks[0]["text"]["text"]
    fields = dict(f["text"].split("\n", 1) for f in blocks[1]["fields"])
    assert fields == {
        "*Scope*": "team=finance",
        "*Actual*": "$812.40",
        "*Expected*": "$1,000.00",
        "*Impact*": "+$312.40",
        "*Severity*": "warning",
    }
    assert blocks[2]["text"]["text"] == "*Top contributors*\n• job nightly-etl: $400.00\n• warehouse bi: $212.40"
    assert "|Open in Dagster>" in blocks[3]["text"]["text"] and "budget_status" in blocks[3]["text"]["text"]
    assert alert.identity in blocks[4]["elements"][0]["text"]
    assert states(store) == [(alert.identity, 0, "delivered")]


def test_slack_payload_escapes_and_omits():
    """Names cannot inject mrkdwn links or mentions; absent expected/impact/url/details are left out."""
    alert = Alert(
        identity="anomaly:42", kind="anomaly", title="Spike <!channel>", scope="job <a|b> & co", actual_usd=-5
    )
    body = slack_payload(alert)
    assert "<!channel>" not in body["text"] + json.dumps(body["blocks"][1:]) and "&lt;!channel&gt;" in body["text"]
    assert body["blocks"][0]["text"] == {"type": "plain_text", "text": ":warning: Spike <!channel>"}  # shown as is
    fields = dict(f["text"].split("\n", 1) for f in body["blocks"][1]["fields"])
    assert fields == {"*Scope*": "job &lt;a|b&gt; &amp; co", "*Actual*": "-$5.00", "*Severity*": "warning"}
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]


def test_teams_payload_is_an_adaptive_card(receiver, store):
    r = receiver(lambda n, path: Reply(202, body=b""))  # Workflows answer 202 Accepted
    alert = budget_alert(severity="critical", details=[(f"job {i}", 100.0 - i) for i in range(12)])
    report = deliver([alert], TeamsSink(r.url(TEAMS_PATH), retry=FAST), store)
    assert report.delivered == [alert.identity]
    body = r.seen[0].body
    assert body["type"] == "message"
    (attachment,) = body["attachments"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    card = attachment["content"]
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    assert card["$schema"] == "http://adaptivecards.io/schemas/adaptive-card.json"
    title, facts, heading, contributors, footer = card["body"]
    assert title == {
        "type": "TextBlock",
        "text": "Budget finance-weekly at 80%",
        "size": "Medium",
        "weight": "Bolder",
        "color": "Attention",
        "wrap": True,
    }
    assert facts["type"] == "FactSet"
    assert {f["title"]: f["value"] for f in facts["facts"]} == {
        "Scope": "team=finance",
        "Actual": "$812.40",
        "Expected": "$1,000.00",
        "Impact": "+$312.40",
        "Severity": "critical",
    }
    assert heading["text"] == "Top contributors"
    assert contributors["type"] == "FactSet"
    assert contributors["facts"][0] == {"title": "job 0", "value": "$100.00"}
    assert contributors["facts"][-1] == {"title": "…", "value": "and 2 more"}
    assert len(contributors["facts"]) == 11
    assert alert.identity in footer["text"] and footer["isSubtle"] is True
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open in Dagster", "url": DAGSTER_URL}]


# --- once per (identity, escalation) -----------------------------------------------------------------------


def test_no_duplicate_across_ticks(receiver, store):
    r = receiver()
    sink = SlackSink(r.url(), retry=FAST)
    alerts = [budget_alert("budget:a:2026-12-01:80"), budget_alert("anomaly:7", kind="anomaly")]
    first = deliver(alerts, sink, store)
    second = deliver(alerts, sink, store)
    assert first.delivered == ["budget:a:2026-12-01:80", "anomaly:7"]
    assert second.delivered == [] and sorted(second.skipped) == ["anomaly:7", "budget:a:2026-12-01:80"]
    assert second.attempts == 0 and len(r.seen) == 2
    assert second.summary() == "alerts: 2 skipped (already delivered) (0 request(s))"


def test_escalation_re_sends_once(receiver, store):
    r = receiver()
    sink = SlackSink(r.url(), retry=FAST)
    identity = "budget:finance-weekly:2026-12-01"
    reports = [
        deliver([budget_alert(identity, escalation=e)], sink, store)
        for e in (0, 0, 1, 1, 0)  # first, repeat, escalated, repeat, an old tick's lower escalation
    ]
    assert [rep.delivered for rep in reports] == [[identity], [], [identity], [], []]
    assert [s.body["blocks"][-1]["elements"][0]["text"] for s in r.seen] == [
        f"budget · {identity}",
        f"budget · {identity} · escalation 1",
    ]
    assert states(store) == [(identity, 0, "delivered"), (identity, 1, "delivered")]


def test_a_higher_escalation_supersedes_a_pending_lower_one(receiver, store):
    down = {"on": True}
    r = receiver(lambda n, path: Reply(503) if down["on"] else Reply())
    sink = SlackSink(r.url(), retry=RetryPolicy(max_attempts=1, jitter_s=0))
    identity = "anomaly:job-9:2026-12-01"
    assert deliver([budget_alert(identity, escalation=0)], sink, store).pending == [identity]
    down["on"] = False
    report = deliver([budget_alert(identity, escalation=2)], sink, store)
    assert report.delivered == [identity]
    assert r.seen[-1].headers["Idempotency-Key"] == budget_alert(identity, escalation=2).idempotency_key
    assert len(r.seen) == 2  # the stale escalation 0 was never sent again
    assert states(store) == [(identity, 0, "superseded"), (identity, 2, "delivered")]


@pytest.mark.parametrize(("max_attempts", "repeat"), [(1, True), (1, False), (3, True)])
def test_a_receiver_failing_every_other_call_gets_each_alert_once(receiver, store, max_attempts, repeat):
    """500 on every odd call. Without retries the alerts trickle in over several ticks; the failed ones
    stay pending, and are sent even when the sensor does not pass them again (``repeat=False``)."""
    r = receiver(lambda n, path: Reply(500, body=b"oops") if n % 2 else Reply())
    sink = SlackSink(r.url(), retry=RetryPolicy(max_attempts=max_attempts, backoff_s=0.001, jitter_s=0))
    alerts = [budget_alert(f"anomaly:{i}", kind="anomaly") for i in range(10)]
    ticks, delivered = 0, []
    while ticks < 10:
        report = deliver(alerts if repeat or ticks == 0 else [], sink, store)
        ticks += 1
        delivered += report.delivered
        if not report.pending:
            break
    assert ticks == (5 if max_attempts == 1 else 1)
    assert sorted(delivered) == sorted(a.identity for a in alerts)
    assert r.accepted_keys == Counter({a.idempotency_key: 1 for a in alerts})
    assert {state for _, _, state in states(store)} == {"delivered"}
    assert deliver(alerts, sink, store).attempts == 0


def test_concurrent_callers_send_each_alert_once(receiver, store):
    """Two callers on one store (two sensors, or overlapping ticks) serialize on SQLite's write lock."""
    r = receiver(lambda n, path: Reply(delay_s=0.05))
    sink = SlackSink(r.url(), retry=FAST)
    alerts = [budget_alert(f"budget:b{i}:2026-12-01:100") for i in range(6)]
    threads = [threading.Thread(target=deliver, args=(alerts, sink, store)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.accepted_keys == Counter({a.idempotency_key: 1 for a in alerts})


def test_a_crash_between_post_and_record_is_re_sent_not_lost(receiver, store, caplog):
    """At-least-once: the claim survives the crash; after its lease the alert is sent again, flagged."""

    class Crash(BaseException):
        pass

    class CrashAfterPost:
        name = "slack"

        def __init__(self, inner: SlackSink):
            self.inner = inner

        def send(self, alert: Alert, *, deadline: float | None = None) -> int:
            self.inner.send(alert, deadline=deadline)
            raise Crash  # the process dies before the delivery is recorded

    r = receiver()
    sink = SlackSink(r.url(), retry=FAST)
    alert = budget_alert()
    with pytest.raises(Crash):
        deliver([alert], CrashAfterPost(sink), store)
    assert states(store) == [(alert.identity, 0, "sending")]
    within_lease = deliver([alert], sink, store)
    assert within_lease.in_flight == [alert.identity] and within_lease.attempts == 0
    later = deliver([alert], sink, store, clock=lambda: time.time() + LEASE_S + 1)
    assert later.delivered == [alert.identity] and later.resent == [alert.identity]
    assert "interrupted" in caplog.text
    assert [s.headers["Idempotency-Key"] for s in r.seen] == [alert.idempotency_key] * 2  # the honest duplicate
    assert deliver([alert], sink, store).skipped == [alert.identity]
    (row,) = AlertStore(store).rows()
    assert row["state"] == "delivered" and row["sends"] == 2 and row["delivered_at"]


def test_an_exhausted_budget_defers_to_the_next_call(receiver, store):
    r = receiver()
    sink = SlackSink(r.url(), retry=FAST)
    alerts = [budget_alert(f"anomaly:{i}", kind="anomaly") for i in range(3)]
    report = deliver(alerts, sink, store, budget_s=0)
    assert report.deferred == [a.identity for a in alerts] and report.pending == report.deferred
    assert r.seen == []
    assert deliver([], sink, store).delivered == [a.identity for a in alerts]


# --- retries -----------------------------------------------------------------------------------------------


def test_a_400_is_not_retried_and_the_alert_is_rejected(receiver, store, caplog):
    r = receiver(lambda n, path: Reply(400, body=b"invalid_blocks"))
    sink = SlackSink(r.url(), retry=FAST)
    alert = budget_alert()
    report = deliver([alert], sink, store)
    assert len(r.seen) == 1 and report.attempts == 1
    assert report.rejected == [alert.identity] and report.pending == []
    assert report.failed[alert.identity] == "slack webhook refused the alert: HTTP 400: invalid_blocks; not retried"
    assert "rejected, not retried" in caplog.text
    assert deliver([alert], sink, store).skipped == [alert.identity]
    assert len(r.seen) == 1
    assert states(store) == [(alert.identity, 0, "rejected")]


def test_a_403_is_not_retried_but_stays_pending_until_the_webhook_works(receiver, store):
    revoked = {"on": True}
    r = receiver(lambda n, path: Reply(403, body=b"invalid_token") if revoked["on"] else Reply())
    sink = SlackSink(r.url(), retry=FAST)
    alert = budget_alert()
    first = deliver([alert], sink, store)
    assert len(r.seen) == 1 and first.pending == [alert.identity] and first.rejected == []
    revoked["on"] = False
    assert deliver([], sink, store).delivered == [alert.identity]


def test_a_429_waits_for_retry_after(receiver, store):
    r = receiver(lambda n, path: Reply(429, headers={"Retry-After": "0"}) if n == 1 else Reply())
    slept: list[float] = []
    sink = SlackSink(r.url(), retry=FAST, sleep=slept.append)
    assert deliver([budget_alert()], sink, store).attempts == 2
    assert slept == [0]


def test_a_timeout_is_retried(receiver, store):
    """The first post outlives the 0.2 s timeout. It may still have reached the receiver (it did here):
    the retry carries the same Idempotency-Key, which a deduplicating receiver can use."""
    r = receiver(lambda n, path: Reply(delay_s=1.0) if n == 1 else Reply())
    sink = SlackSink(r.url(), timeout_s=0.2, retry=FAST)
    start = time.monotonic()
    report = deliver([budget_alert()], sink, store)
    assert report.delivered == ["budget:finance-weekly:2026-12-01:80"] and report.attempts == 2
    assert time.monotonic() - start < 1.0
    assert len({s.headers["Idempotency-Key"] for s in r.seen}) == 1 and len(r.seen) == 2


def test_retries_are_bounded(receiver, store):
    r = receiver(lambda n, path: Reply(502, body=b"bad gateway"))
    sink = SlackSink(r.url(), retry=FAST)
    report = deliver([budget_alert()], sink, store)
    assert len(r.seen) == 4 and report.attempts == 4  # 1 + 3 retries
    assert report.failed["budget:finance-weekly:2026-12-01:80"] == (
        "slack webhook post failed: HTTP 502: bad gateway; gave up after 4 attempt(s)"
    )
    assert report.pending == ["budget:finance-weekly:2026-12-01:80"]


# --- the webhook URL is a secret ---------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_webhook_url_never_reaches_logs_or_errors(receiver, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    echo_500 = receiver(lambda n, path: Reply(500, body=f"no such hook {path}".encode()))
    echo_400 = receiver(lambda n, path: Reply(400, body=json.dumps({"error": {"message": path}}).encode()))
    ok = receiver()
    texts: list[str] = []
    sinks = [
        SlackSink(ok.url(), retry=FAST),  # success: httpx logs the request URL at INFO
        TeamsSink(ok.url(TEAMS_PATH), retry=FAST),
        SlackSink(echo_500.url(), retry=FAST),  # receivers that echo the secret path (and query) back
        TeamsSink(echo_500.url(TEAMS_PATH), retry=FAST),
        SlackSink(echo_400.url(), retry=FAST),
        TeamsSink(echo_400.url(TEAMS_PATH), retry=FAST),
        SlackSink(f"http://127.0.0.1:{_closed_port()}{SLACK_PATH}", retry=FAST),  # connection refused
        SlackSink(f"http://127.0.0.1:{_closed_port()}{SLACK_PATH}", timeout_s=0.2, retry=RetryPolicy(max_attempts=1)),
    ]
    for i, sink in enumerate(sinks):
        report = deliver([budget_alert(f"anomaly:{i}", kind="anomaly")], sink, tmp_path / f"{i}.sqlite")
        texts.append(json.dumps(AlertStore(tmp_path / f"{i}.sqlite").rows()))
        texts += [repr(sink), str(report), report.summary(), *report.failed.values()]
        try:
            sink.send(budget_alert())
        except DeliveryError as e:
            texts += [str(e), repr(e), "".join(traceback.format_exception(e))]
    texts.append(caplog.text)
    assert any("slack webhook post failed: HTTP 500: no such hook <redacted>" in t for t in texts)
    assert any("teams webhook post failed: HTTP 500: no such hook <redacted>?<redacted>" in t for t in texts)
    assert any("slack webhook refused the alert: HTTP 400: <redacted>; not retried" in t for t in texts)
    assert any("connection error (ConnectError)" in t for t in texts)
    assert 'HTTP Request: POST <redacted> "HTTP/1.0 200 OK"' in caplog.text  # httpx logs every request URL
    for text in texts:
        assert SECRET_TOKEN not in text
        assert "T0FAKE0001/B0FAKE0001" not in text and "0fake0workflow/triggers" not in text


def test_a_bad_webhook_setting_names_the_variable_not_the_secret():
    for environ in (
        {"COST_ASSETS_ALERT_WEBHOOK": f"http://hooks.example.com{SLACK_PATH}"},  # plain http off loopback
        {"COST_ASSETS_ALERT_WEBHOOK": f"hooks.slack.com{SLACK_PATH}", "COST_ASSETS_ALERT_SINK": "teams"},
    ):
        with pytest.raises(ConfigurationError) as caught:
            sink_from_environ(environ)
        assert "COST_ASSETS_ALERT_WEBHOOK=<redacted>" in str(caught.value)
        assert SECRET_TOKEN not in str(caught.value) and SECRET_TOKEN not in repr(caught.value)


# --- configuration and the log sink ------------------------------------------------------------------------


def test_sink_from_environ():
    webhook = f"https://hooks.slack.com{SLACK_PATH}"
    assert isinstance(sink_from_environ({}), LogSink)
    assert isinstance(sink_from_environ({"COST_ASSETS_ALERT_WEBHOOK": ""}), LogSink)
    slack = sink_from_environ({"COST_ASSETS_ALERT_WEBHOOK": webhook})
    assert isinstance(slack, SlackSink) and SECRET_TOKEN not in repr(slack)
    assert isinstance(
        sink_from_environ({"COST_ASSETS_ALERT_WEBHOOK": webhook, "COST_ASSETS_ALERT_SINK": "Teams"}), TeamsSink
    )
    assert isinstance(
        sink_from_environ({"COST_ASSETS_ALERT_WEBHOOK": webhook, "COST_ASSETS_ALERT_SINK": "log"}), LogSink
    )
    assert sink_from_environ({"COST_ASSETS_ALERT_WEBHOOK": webhook}, timeout_s=3).timeout_s == 3
    with pytest.raises(ConfigurationError, match="COST_ASSETS_ALERT_SINK='slack': needs COST_ASSETS_ALERT_WEBHOOK"):
        sink_from_environ({"COST_ASSETS_ALERT_SINK": "slack"})
    with pytest.raises(ConfigurationError, match="COST_ASSETS_ALERT_SINK='email': allowed: slack, teams, log"):
        sink_from_environ({"COST_ASSETS_ALERT_SINK": "email"})


def test_the_store_path_is_a_setting():
    assert Settings.from_environ({}).alert_store_path == "data/alerts.sqlite"
    assert Settings.from_environ({"COST_ASSETS_ALERT_STORE": "/var/x.sqlite"}).alert_store_path == "/var/x.sqlite"


def test_the_log_sink_logs_each_alert_once(store, caplog):
    caplog.set_level(logging.INFO, logger="cost_assets.alerts")
    sink = sink_from_environ({})
    alerts = [budget_alert(), budget_alert("anomaly:1", kind="anomaly", severity="critical")]
    assert deliver(alerts, sink, store).delivered == ["budget:finance-weekly:2026-12-01:80", "anomaly:1"]
    assert deliver(alerts, sink, store).delivered == []
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.getMessage().startswith("alert [")]
    assert lines == [
        (
            "WARNING",
            "alert [warning] Budget finance-weekly at 80%: team=finance: actual $812.40 vs expected $1,000.00, "
            f"impact +$312.40; top: job nightly-etl $400.00, warehouse bi $212.40; {DAGSTER_URL}",
        ),
        ("ERROR", lines[1][1]),
    ]


def test_an_alert_is_validated_and_hashable():
    alert = budget_alert(details=[["job", 1.5]])
    assert alert.details == (("job", 1.5),) and hash(alert)
    assert Alert.from_json(alert.to_json()) == alert
    with pytest.raises(ValueError, match="kind='cost': allowed: budget, anomaly, run_failure"):
        budget_alert(kind="cost")
    with pytest.raises(ValueError, match="escalation=-1"):
        budget_alert(escalation=-1)
    with pytest.raises(ValueError, match="actual_usd=nan"):
        budget_alert(actual_usd=float("nan"))
