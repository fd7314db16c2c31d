"""The HTTP transport every live client shares: auth, retries, a client-side rate limit, call statistics.

Why a small hand-written retry loop and not tenacity: the policy needs the *response* (``Retry-After``
on 429/503), must fail fast on 401/403, must count every retry and every second spent waiting per
endpoint for the materialization metadata, and must build its own error messages so no credential can
reach them. Those four concerns fit in one readable loop; spread over tenacity callbacks they would not.

The policy: 429, 502, 503 and 504 and connection errors/timeouts (which include a
connection dropped mid-body) are retried, at most ``max_attempts`` times and within ``retry_timeout_s``.
A response with ``Retry-After`` (integer seconds) waits that long plus jitter; everything else waits
``backoff_s * 2**(attempt-1)`` capped at ``max_backoff_s``, plus jitter. 401/403
are never retried: the message says which variable to check. Other 4xx/5xx fail at once.

Secrets: tokens and client secrets live only in :class:`PatCredentials`/:class:`OAuthM2MCredentials`
and in the ``Authorization`` header. Error messages are built from the method, the path (never the
query string or headers) and the server's ``error_code``/``message``, and every known secret is scrubbed
from them anyway, in case a server echoes one back.
"""

import base64
import ipaddress
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx

RETRY_STATUSES = frozenset({429, 502, 503, 504})
AUTH_STATUSES = frozenset({401, 403})
USER_AGENT = "cost-assets/0.1 (+httpx)"
REDACTED = "<redacted>"
# Path segments that vary per call, folded so statistics group by endpoint, not by id.
_VARYING = [
    (re.compile(r"/accounts/[^/]+/"), "/accounts/{account_id}/"),
    (re.compile(r"/sql/statements/[^/]+"), "/sql/statements/{id}"),
    (re.compile(r"/result/chunks/\d+"), "/result/chunks/{n}"),
]


class ApiError(RuntimeError):
    """A call that failed for good. The message names the method, endpoint and HTTP status; never a secret."""

    def __init__(
        self,
        message: str,
        *,
        method: str,
        endpoint: str,
        status: int | None,
        error_code: str | None = None,
        attempts: int = 1,
    ):
        super().__init__(message)
        self.method = method
        self.endpoint = endpoint
        self.status = status
        self.error_code = error_code
        self.attempts = attempts


class AuthError(ApiError):
    """401/403: the credentials were refused. Not retried; the message names the variables to check."""


class Credentials(Protocol):
    """Produces the ``Authorization`` header value; knows which settings a refusal should point to."""

    hint: str

    def authorization(self, client: "ApiClient") -> str: ...

    def secrets(self) -> list[str]: ...


@dataclass
class PatCredentials:
    """A personal access token (or any pre-issued bearer token, e.g. an Entra ID token)."""

    token: str
    hint: str = "DATABRICKS_TOKEN (or DATABRICKS_ACCESS_TOKEN) and DATABRICKS_HOST"

    def __post_init__(self) -> None:
        if not self.token.strip():
            raise ValueError(f"the token is empty: check {self.hint}")

    def __repr__(self) -> str:
        return f"PatCredentials(token={REDACTED})"

    def authorization(self, client: "ApiClient") -> str:
        return f"Bearer {self.token}"

    def secrets(self) -> list[str]:
        return [self.token]


@dataclass
class OAuthM2MCredentials:
    """Databricks OAuth machine-to-machine (client credentials).

    The access token is cached until ``refresh_margin_s`` before it expires (at most half its lifetime,
    so short-lived tokens are refreshed too), then fetched again. Thread-safe.
    """

    token_url: str
    client_id: str
    client_secret: str
    scope: str = "all-apis"
    refresh_margin_s: float = 60.0
    hint: str = "DATABRICKS_CLIENT_ID and DATABRICKS_CLIENT_SECRET (OAuth M2M service principal)"
    _token: str | None = field(default=None, repr=False)
    _refresh_at: float = field(default=0.0, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.client_id.strip() or not self.client_secret.strip():
            raise ValueError(f"the OAuth client id or secret is empty: check {self.hint}")

    def __repr__(self) -> str:
        return f"OAuthM2MCredentials(token_url={self.token_url!r}, client_id={self.client_id!r})"

    def authorization(self, client: "ApiClient") -> str:
        with self._lock:
            if self._token is None or client.clock() >= self._refresh_at:
                self._fetch(client)
            return f"Bearer {self._token}"

    def _fetch(self, client: "ApiClient") -> None:
        basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
        response = client.send(
            "POST",
            self.token_url,
            headers={"Authorization": f"Basic {basic}"},
            data={"grant_type": "client_credentials", "scope": self.scope},
            auth_hint=self.hint,
        )
        body = client.json_body(response, "POST", self.token_url)
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not token or lifetime is None:
            endpoint = client.endpoint_of(self.token_url)
            raise ApiError(
                f"POST {endpoint}: the token response lacks access_token or expires_in",
                method="POST",
                endpoint=endpoint,
                status=response.status_code,
            )
        lifetime = float(lifetime)  # an int, or a string in some token services
        self._token = token
        self._refresh_at = client.clock() + lifetime - min(self.refresh_margin_s, lifetime / 2)

    def secrets(self) -> list[str]:
        return [s for s in (self.client_secret, self._token) if s]


def normalize_host(host: str) -> str:
    """``https://`` unless the host is loopback; a token never travels in clear text to another machine."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = f"https://{host}"
    parts = urlsplit(host)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError(f"not a workspace URL: {host!r} (expected https://<host>)")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError(f"{host!r} uses plain http; only https:// is allowed (http only for 127.0.0.1/localhost)")
    return host


def _is_loopback(hostname: str) -> bool:
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class _RateLimiter:
    """Spaces request starts at least ``1/rate`` seconds apart (shared by all threads of one client)."""

    def __init__(self, per_second: float | None, clock: Callable[[], float], sleep: Callable[[float], None]):
        self.interval = 1.0 / per_second if per_second else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at = 0.0
        self.lock = threading.Lock()

    def wait(self) -> float:
        if not self.interval:
            return 0.0
        with self.lock:
            now = self.clock()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        delay = start - now
        if delay > 0:
            self.sleep(delay)
        return delay


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    retry_timeout_s: float = 300.0
    backoff_s: float = 1.0
    max_backoff_s: float = 10.0
    jitter_s: float = 1.0

    def jitter(self, rng: random.Random) -> float:
        """Up to ``jitter_s`` seconds at random, so clients that failed together do not retry together."""
        return rng.uniform(0, self.jitter_s) if self.jitter_s else 0.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Exponential from ``backoff_s``, capped at ``max_backoff_s``, plus jitter."""
        return min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)) + self.jitter(rng)

    def retry_after(self, response: httpx.Response, rng: random.Random) -> float | None:
        """``Retry-After`` (integer seconds) plus jitter; None when the server did not say."""
        value = response.headers.get("Retry-After", "").strip()
        return int(value) + self.jitter(rng) if value.isdigit() else None


class ApiClient:
    """One keep-alive ``httpx.Client`` with auth, retries, a rate limit and per-endpoint statistics.

    ``credentials=None`` for unauthenticated APIs (the Azure Retail Prices API). Use as a context manager
    or call :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        credentials: Credentials | None = None,
        *,
        timeout_s: float = 30.0,
        max_requests_per_second: float | None = 20.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        name: str = "Databricks API",
        retry_statuses: frozenset[int] = RETRY_STATUSES,
    ):
        self.base_url = normalize_host(base_url)
        self.name = name  # how error messages call the service
        self.credentials = credentials
        self.retry = retry or RetryPolicy()
        # Databricks' 500s are mostly permanent (a bad request it failed on); other services say "retry" with any 5xx.
        self.retry_statuses = retry_statuses
        self.sleep, self.clock = sleep, clock
        self.rng = rng or random.Random()
        self.limiter = _RateLimiter(max_requests_per_second, clock, sleep)
        self.http = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            follow_redirects=False,
        )
        self.response_headers: Mapping[str, str] = {}
        self._counts: Counter[str] = Counter()
        self._seconds: Counter[str] = Counter()
        self._stats_lock = threading.Lock()

    def __enter__(self) -> "ApiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    # --- requests ----------------------------------------------------------------------------------------

    def get_json(self, path: str, params: Mapping[str, Any] | None = None) -> dict:
        return self.json_body(self.request("GET", path, params=params), "GET", path)

    def post_json(self, path: str, body: Mapping[str, Any]) -> dict:
        return self.json_body(self.request("POST", path, json=body), "POST", path)

    def get_text(self, path: str, params: Mapping[str, Any] | None = None, accept: str = "text/plain") -> str:
        return self.request("GET", path, params=params, headers={"Accept": accept}).text

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """An authenticated call (``Authorization`` recomputed per attempt, so a refreshed token is used)."""
        hint = self.credentials.hint if self.credentials else None
        return self.send(
            method,
            path,
            params=params,
            json=json,
            headers=headers,
            authorize=self.credentials is not None,
            auth_hint=hint,
        )

    def send(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Mapping[str, Any] | None = None,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        authorize: bool = False,
        auth_hint: str | None = None,
    ) -> httpx.Response:
        """The retry loop. Returns a 2xx/3xx response or raises :class:`ApiError`/:class:`AuthError`."""
        endpoint = self.endpoint_of(url)
        deadline = self.clock() + self.retry.retry_timeout_s
        attempt = 0
        while True:
            attempt += 1
            self._add_seconds("rate_limit_wait_s", self.limiter.wait())
            request_headers = dict(headers or {})
            if authorize and self.credentials is not None:
                request_headers["Authorization"] = self.credentials.authorization(self)
            self._count(f"calls{endpoint}")
            try:
                response = self.http.request(method, url, params=params, json=json, data=data, headers=request_headers)
            except httpx.TransportError as e:  # refused, reset, timed out, or closed mid-body
                self._count("connection_errors")
                problem, delay = f"connection error ({type(e).__name__})", self.retry.backoff(attempt, self.rng)
                status = None
            else:
                status = response.status_code
                if status < 400:
                    self.response_headers = response.headers
                    return response
                self._count(f"http_{status}")
                if status in AUTH_STATUSES:
                    raise self._error(
                        AuthError,
                        method,
                        endpoint,
                        response,
                        attempt,
                        f"; the credentials were refused, check {auth_hint or 'the credentials'}",
                    )
                if status not in self.retry_statuses:
                    raise self._error(ApiError, method, endpoint, response, attempt, "")
                problem = f"HTTP {status}"
                delay = self.retry.retry_after(response, self.rng)
                delay = self.retry.backoff(attempt, self.rng) if delay is None else delay
            if attempt == self.retry.max_attempts or self.clock() + delay > deadline:
                detail = (
                    f"gave up after {attempt} attempt(s) within the retry budget of {self.retry.retry_timeout_s:g} s"
                )
                if status is None:
                    raise ApiError(
                        self.redact(f"{self.name} {method} {endpoint} failed: {problem}; {detail}"),
                        method=method,
                        endpoint=endpoint,
                        status=None,
                        attempts=attempt,
                    )
                raise self._error(ApiError, method, endpoint, response, attempt, f"; {detail}")
            self._count(f"retries{endpoint}")
            self._count("retries")
            self._add_seconds("throttled_s", delay)
            self.sleep(delay)

    # --- helpers -----------------------------------------------------------------------------------------

    def endpoint_of(self, url: str) -> str:
        """``/api/2.0/sql/statements/01ef…`` → ``/api/2.0/sql/statements/{id}`` (no host, no query)."""
        path = urlsplit(url).path if "://" in url else url.split("?", 1)[0]
        for pattern, repl in _VARYING:
            path = pattern.sub(repl, path)
        return path

    def redact(self, text: str) -> str:
        for secret in self.credentials.secrets() if self.credentials else []:
            if secret:
                text = text.replace(secret, REDACTED)
        return text

    def stats(self) -> dict[str, float]:
        """Calls and retries per endpoint, totals, HTTP error counts, seconds throttled and rate-limited."""
        with self._stats_lock:
            out: dict[str, float] = dict(self._counts)
            out.update({k: round(v, 3) for k, v in self._seconds.items()})
        out["calls"] = sum(v for k, v in self._counts.items() if k.startswith("calls/"))
        out.setdefault("retries", 0)
        out.setdefault("throttled_s", 0.0)
        return out

    def json_body(self, response: httpx.Response, method: str, url: str) -> dict:
        """The response's JSON object, or an :class:`ApiError` naming the call."""
        endpoint = self.endpoint_of(url)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ApiError(
                f"{self.name} {method} {endpoint}: expected a JSON object in the response",
                method=method,
                endpoint=endpoint,
                status=response.status_code,
            )
        return body

    def _count(self, key: str) -> None:
        with self._stats_lock:
            self._counts[key] += 1

    def _add_seconds(self, key: str, seconds: float) -> None:
        if seconds:
            with self._stats_lock:
                self._seconds[key] += seconds

    def _error(
        self, kind: type[ApiError], method: str, endpoint: str, response: httpx.Response, attempts: int, suffix: str
    ) -> ApiError:
        code, message = _error_body(response, self.redact)
        text = f"{self.name} {method} {endpoint} failed: HTTP {response.status_code}"
        text += f" {code}" if code else ""
        text += f": {message.rstrip('. ')}" if message else ""
        return kind(
            self.redact(text + suffix),
            method=method,
            endpoint=endpoint,
            status=response.status_code,
            error_code=code,
            attempts=attempts,
        )


def _error_body(response: httpx.Response, redact: Callable[[str], str]) -> tuple[str | None, str]:
    """``{error_code, message}`` (Databricks) or ``{error, error_description}`` (OAuth); else a short text.

    Secrets are scrubbed *before* the text is shortened: cut first, a secret straddling the cut would
    survive as a prefix that no longer matches the whole secret, and leak.
    """
    try:
        body = response.json()
    except ValueError:
        return None, redact(response.text)[:200].strip()
    if not isinstance(body, dict):
        return None, redact(str(body))[:200]
    code = body.get("error_code") or body.get("error")
    message = body.get("message") or body.get("error_description") or ""
    return (redact(str(code)) if code else None), redact(str(message))[:500]
