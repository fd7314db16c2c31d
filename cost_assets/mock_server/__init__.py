"""A Databricks-compatible HTTP server over the simulated world, on 127.0.0.1 only.

It serves the paths, parameters, paging schemes, error bodies and auth of the Databricks APIs the
pipeline uses, with payloads from the same views as the in-process simulated resources, so the live
client against it and the simulated resources yield equal tables. Faults and the quirks of live
workspaces are configuration.

Layout:

- ``options.py``: :class:`MockOptions`, how the mock workspace answers (one CLI flag each).
- ``faults.py``: :class:`Faults` (rate limit, 503s, slow and dropped responses), their injection per
  request, and :func:`fault_summary`.
- ``protocol.py``: :class:`Reply`, :class:`MockError`, query-string parsing and page tokens.
- ``routes.py``: :class:`MockWorkspace`, the routes of every API (Jobs, Clusters, instance pools,
  Account usage download, SQL statements, SCIM Me, OAuth M2M), auth and the request log.
- ``warehouse.py``: the SQL Statement Execution API's warehouse on DuckDB over the system tables.
- ``serving.py``: model-serving invocations (``/serving-endpoints/...``) and the overlay of
  ``system.serving.endpoint_usage`` the calls leave, apart from the generated world.
- ``server.py``: :class:`MockServer` (HTTP transport on ``ThreadingHTTPServer``) and :func:`serve_in_thread`.
- ``cli.py``: :func:`main`, ``cost-assets mock-server`` / ``python -m cost_assets.mock_server``.
"""

from cost_assets.mock_server.cli import main
from cost_assets.mock_server.faults import Faults, fault_summary
from cost_assets.mock_server.options import DEFAULT_TOKEN, MockOptions
from cost_assets.mock_server.routes import MockWorkspace
from cost_assets.mock_server.server import MockServer, serve_in_thread

__all__ = [
    "DEFAULT_TOKEN",
    "Faults",
    "MockOptions",
    "MockServer",
    "MockWorkspace",
    "fault_summary",
    "main",
    "serve_in_thread",
]
