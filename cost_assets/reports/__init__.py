"""Seeing the money: ``cost-assets report`` (ledger.py: the queries, render.py: table/JSON/CSV, cli.py: the
commands) and the offline HTML report (page.py), all read-only over the stored DuckDB ledger."""
