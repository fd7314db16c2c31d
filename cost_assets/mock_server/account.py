"""A mock account of several workspaces: one :class:`MockServer` per workspace on 127.0.0.1, as every real
workspace has a host of its own (and its own rate limit), with the account's bill behind each warehouse.

Workspace k serves ``world.account_member(world, k)``: its own workspace id, jobs, runs and clusters. The
account bill (``system.billing.usage``, the Account API download) covers every served workspace plus, with
``unconfigured=True``, one more that no server answers for, as a workspace nobody has listed yet: the
pipeline puts its money in ``unattributed``, reason ``workspace_not_configured``.
"""

import dataclasses

from cost_assets.mock_server.options import MockOptions
from cost_assets.mock_server.server import MockServer
from cost_assets.simulation.world import account_member


class MockAccount:
    """``workspaces`` mock workspaces; ports ``port``, ``port + 1``, … (0: any free ports)."""

    def __init__(self, options: MockOptions, workspaces: int, port: int = 0, unconfigured: bool = True):
        if workspaces < 1:
            raise ValueError(f"a mock account has at least one workspace, got {workspaces}")
        billed = tuple(account_member(options.world, k) for k in range(workspaces + int(unconfigured)))
        self.servers = [
            MockServer(dataclasses.replace(options, world=billed[k], account_bill=billed), port + k if port else 0)
            for k in range(workspaces)
        ]

    def workspaces_file(self, token_env: str = "DATABRICKS_TOKEN") -> str:
        """The workspaces file (``COST_ASSETS_WORKSPACES``) of the served workspaces, all with one token."""
        lines = ["workspaces:"]
        for k, server in enumerate(self.servers):
            config = server.mock.config
            lines += [
                f"  - name: mock-{k}",
                f"    host: {server.url}",
                f'    workspace_id: "{config.workspace_id}"',
                f"    cloud: {config.cloud.lower()}",
                f"    token_env: {token_env}",
                "    warehouse_id: mock",
            ]
        return "\n".join(lines) + "\n"

    def start(self) -> "MockAccount":
        for server in self.servers:
            server.start()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> "MockAccount":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
