"""The HTTP transport: :class:`MockServer` on 127.0.0.1, its request handler, and :func:`serve_in_thread`.

Why the standard library's ``ThreadingHTTPServer`` and not starlette + uvicorn (installed only as
dagster-webserver's dependencies, not ours): a test server needs no event loop, starts in a thread in
microseconds, and gives direct control of the socket, which is what "drop the connection mid-body"
requires (write the headers and half the body, then close). ``protocol_version = "HTTP/1.1"`` keeps
connections alive, as the live client expects.
"""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cost_assets.mock_server.options import MockOptions
from cost_assets.mock_server.routes import MockWorkspace

LOOPBACK = "127.0.0.1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    timeout = 60  # idle keep-alive connections end after a minute
    server: "_HttpServer"

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        reply = self.server.mock.handle(method, self.path, headers, body)
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            if reply.drop:  # half the promised body, then the connection goes away
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.close_connection = True
            else:
                self.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (e.g. on a slow reply)
            self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: request lines would flood test output (and headers are never logged)."""


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    mock: MockWorkspace


class MockServer:
    """The server on ``127.0.0.1:port`` (0 picks a free port); ``start()`` serves from a daemon thread."""

    def __init__(self, options: MockOptions | None = None, port: int = 0, clock: Callable[[], float] = time.monotonic):
        self.mock = MockWorkspace(options or MockOptions(), clock)
        self._httpd = _HttpServer((LOOPBACK, port), _Handler)
        self._httpd.mock = self.mock
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self._httpd.server_address[1]}"

    def start(self) -> "MockServer":
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="cost-assets-mock", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self.mock.close()

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def serve_in_thread(options: MockOptions | None = None, port: int = 0) -> Iterator[str]:
    """Serve in a background thread for the ``with`` block; yields the base URL (``http://127.0.0.1:N``)."""
    with MockServer(options, port) as server:
        yield server.url
