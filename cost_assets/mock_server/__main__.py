"""``python -m cost_assets.mock_server``: the same as ``cost-assets mock-server``."""

from cost_assets.mock_server.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
