"""``cost-assets mock-server`` (and ``python -m cost_assets.mock_server``): serve a simulated world until
interrupted (Ctrl-C, SIGINT or SIGTERM), then print the injected faults per kind to stderr."""

import argparse
import datetime as dt
import signal
import sys
import threading

from cost_assets.mock_server.account import MockAccount
from cost_assets.mock_server.faults import Faults, fault_summary
from cost_assets.mock_server.options import DEFAULT_TOKEN, MockOptions
from cost_assets.mock_server.server import MockServer
from cost_assets.simulation.world import WorldConfig

DESCRIPTION = "A Databricks-compatible HTTP server over the simulated world, on 127.0.0.1 only."


def main(argv: list[str] | None = None) -> int:
    """``cost-assets mock-server``: serve a simulated world until interrupted."""
    p = argparse.ArgumentParser(prog="cost-assets mock-server", description=DESCRIPTION)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--scale", default="small", choices=["tiny", "small", "medium", "large"])
    p.add_argument("--days", type=int, default=7)
    p.add_argument(
        "--start",
        type=dt.date.fromisoformat,
        default=None,
        help="first simulated UTC day (default: the last --days complete days)",
    )
    p.add_argument(
        "--workspaces",
        type=int,
        default=1,
        metavar="N",
        help="serve a mock account of N workspaces, one per port from --port on, and print its workspaces file "
        "(COST_ASSETS_WORKSPACES; the other lines are # comments, so `> workspaces.yaml` saves it); the account "
        "bill names one more workspace that is not served",
    )
    p.add_argument("--cloud", default="AZURE", type=str.upper)
    p.add_argument("--tier", default="PREMIUM", type=str.upper)
    p.add_argument("--token", default=DEFAULT_TOKEN, help="the personal access token to accept")
    p.add_argument("--rate-limit", type=float, default=None, help="requests per second before 429s")
    p.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered 503")
    p.add_argument("--slow-rate", type=float, default=0.0)
    p.add_argument("--slow-seconds", type=float, default=0.0)
    p.add_argument("--drop-rate", type=float, default=0.0, help="share of responses cut off mid-body")
    p.add_argument("--fault-seed", type=int, default=0)
    p.add_argument("--statement-delay", type=float, default=0.0, help="seconds a SQL statement stays PENDING")
    p.add_argument(
        "--sql-inline-limit-bytes", type=int, default=25 * 1024 * 1024, help="INLINE SQL results above this fail"
    )
    p.add_argument("--sql-link-ttl", type=float, default=900.0, help="seconds an EXTERNAL_LINKS URL stays valid")
    live = p.add_argument_group("what live workspaces do (repeat the flags that take one id or day)")
    live.add_argument(
        "--deleted-job",
        type=int,
        action="append",
        default=[],
        metavar="JOB_ID",
        help="jobs/get answers 404 RESOURCE_DOES_NOT_EXIST; its runs stay listed",
    )
    live.add_argument(
        "--forbidden-job",
        type=int,
        action="append",
        default=[],
        metavar="JOB_ID",
        help="jobs/get answers 403 PERMISSION_DENIED; its runs stay listed",
    )
    live.add_argument("--forbidden-pools", action="store_true", help="instance-pools/get answers 403 PERMISSION_DENIED")
    live.add_argument(
        "--purged-cluster",
        action="append",
        default=[],
        metavar="CLUSTER_ID",
        help="clusters/get answers 'Cluster <id> does not exist', clusters/list leaves it out, "
        "clusters/events still serves its events",
    )
    live.add_argument(
        "--purged-cluster-error",
        choices=["404", "400"],
        default="404",
        help="a purged cluster's clusters/get: 404 RESOURCE_DOES_NOT_EXIST or 400 "
        "INVALID_PARAMETER_VALUE (default 404)",
    )
    live.add_argument(
        "--events-retention-days",
        type=int,
        default=None,
        metavar="N",
        help="clusters/events returns only events newer than now - N days",
    )
    live.add_argument(
        "--runs-retention-days",
        type=int,
        default=None,
        metavar="N",
        help="runs started before now - N days are gone from runs/list and runs/get",
    )
    live.add_argument(
        "--now",
        type=dt.datetime.fromisoformat,
        default=None,
        metavar="ISO_DATETIME",
        help="the clock retention is measured from (UTC; default: the real now)",
    )
    live.add_argument(
        "--missing-system-schema",
        action="append",
        default=[],
        metavar="system.SCHEMA",
        help="statements on its tables end FAILED with [TABLE_OR_VIEW_NOT_FOUND]",
    )
    live.add_argument(
        "--denied-system-schema",
        action="append",
        default=[],
        metavar="system.SCHEMA",
        help="statements on its tables end FAILED with [INSUFFICIENT_PERMISSIONS]",
    )
    live.add_argument(
        "--empty-bill-day",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="no bill rows of that usage date in system.billing.usage or the usage download",
    )
    p.add_argument(
        "--request-log",
        default=None,
        metavar="FILE",
        help="write one JSON line per request: method, path, status, injected fault (never headers)",
    )
    args = p.parse_args(argv)
    start = args.start or dt.datetime.now(dt.UTC).date() - dt.timedelta(days=args.days)
    try:
        options = MockOptions(
            world=WorldConfig(
                seed=args.seed, scale=args.scale, start=start, days=args.days, cloud=args.cloud, tier=args.tier
            ),
            tokens=(args.token,),
            statement_delay_s=args.statement_delay,
            sql_inline_limit_bytes=args.sql_inline_limit_bytes,
            sql_link_ttl_s=args.sql_link_ttl,
            deleted_jobs=tuple(args.deleted_job),
            forbidden_jobs=tuple(args.forbidden_job),
            forbidden_pools=args.forbidden_pools,
            purged_clusters=tuple(args.purged_cluster),
            purged_cluster_error=args.purged_cluster_error,
            events_retention_days=args.events_retention_days,
            runs_retention_days=args.runs_retention_days,
            now=args.now,
            missing_system_schemas=tuple(args.missing_system_schema),
            denied_system_schemas=tuple(args.denied_system_schema),
            empty_bill_days=tuple(args.empty_bill_day),
            request_log=args.request_log,
            faults=Faults(
                rate_limit_per_s=args.rate_limit,
                error_rate=args.error_rate,
                slow_rate=args.slow_rate,
                slow_s=args.slow_seconds,
                drop_rate=args.drop_rate,
                seed=args.fault_seed,
            ),
        )
    except ValueError as e:
        p.error(str(e))
    if args.workspaces > 1:
        return _serve_account(options, args.workspaces, args.port, args.token)
    server = MockServer(options, args.port)
    config = options.world
    # A shell that starts a background job ignores SIGINT in it, and Python then installs no
    # KeyboardInterrupt handler: restore it, and treat SIGTERM (docker stop, kill) the same way — before the
    # banner, which tells a caller the server is up and may be followed by a signal at once.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        print(
            f"mock Databricks workspace {config.workspace_id} (account {config.account_id}) at {server.url}: "
            f"{args.scale} world, seed {args.seed}, {start} + {args.days} days",
            flush=True,
        )
        print(
            f"export DATABRICKS_HOST={server.url} DATABRICKS_TOKEN={args.token} DATABRICKS_WAREHOUSE_ID=mock "
            f"DATABRICKS_ACCOUNT_HOST={server.url} DATABRICKS_ACCOUNT_ID={config.account_id}",
            flush=True,
        )
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        print(fault_summary(server.mock.faults.injected), file=sys.stderr, flush=True)
    return 0


def _account_file(account: MockAccount, account_id: str, token: str) -> str:
    """What ``--workspaces N`` prints: the workspaces file, headed by comments saying what is served and what to
    export, so that stdout redirected to a file (``> workspaces.yaml``) is the file."""
    urls = ", ".join(s.url for s in account.servers)
    return (
        f"# mock Databricks account {account_id}: {len(account.servers)} workspaces at {urls} "
        "(the bill names one more, not served)\n"
        "# this is the workspaces file: save it as workspaces.yaml, then:\n"
        f"# export COST_ASSETS_WORKSPACES=workspaces.yaml DATABRICKS_TOKEN={token} "
        f"COST_ASSETS_BILLING_SOURCE=system_tables DATABRICKS_HOST={account.servers[0].url} "
        "DATABRICKS_WAREHOUSE_ID=mock\n" + account.workspaces_file()
    )


def _serve_account(options: MockOptions, workspaces: int, port: int, token: str) -> int:
    """``--workspaces N``: N servers until interrupted; prints the workspaces file to use (stdout is the file)."""
    account = MockAccount(options, workspaces, port)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        account.start()
        print(_account_file(account, options.world.account_id, token), flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        account.stop()
        for server in account.servers:
            print(f"{server.url}: {fault_summary(server.mock.faults.injected)}", file=sys.stderr, flush=True)
    return 0
