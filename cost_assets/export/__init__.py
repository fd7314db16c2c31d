"""Deliveries of the ledger to where teams already look: Postgres, the Observability Service, Prometheus, FOCUS."""
