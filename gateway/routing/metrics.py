"""Prometheus metrics of the routing layer (served at ``/metrics``; prometheus-client).

One registry per process. With several ``tessera serve``/``worker`` processes each exposes
its own counters, as Prometheus expects (it sums them); gauges read from the store
(pending and dead rows, cursor age, breakers: set from the store by ``/metrics`` on each scrape,
``gateway.api.routing``) are the same in every process.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

DELIVERIES = Counter("tessera_deliveries_total", "Outbox rows delivered", ["route"], registry=REGISTRY)
FAILURES = Counter("tessera_delivery_failures_total", "Delivery attempts that failed, by outcome (retry, wait, dead)",
                   ["route", "outcome"], registry=REGISTRY)
RETRIES = Counter("tessera_delivery_retries_total", "Delivery attempts scheduled again", ["route"], registry=REGISTRY)
LAG = Histogram("tessera_delivery_lag_seconds", "From the change's commit to its delivery", ["route"], registry=REGISTRY,
                buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600))
PENDING = Gauge("tessera_outbox_pending", "Outbox rows waiting for delivery", ["route"], registry=REGISTRY)
DEAD = Gauge("tessera_dead_letters", "Dead-lettered outbox rows", ["route"], registry=REGISTRY)
CURSOR_AGE = Gauge("tessera_route_cursor_age_seconds", "Seconds since a pull route's cursor last moved", ["route"], registry=REGISTRY)
SYNC_RUNS = Counter("tessera_sync_runs_total", "Sync runs finished, by status", ["route", "status"], registry=REGISTRY)
RECORDS_PULLED = Counter("tessera_records_pulled_total", "Records read by pulls", ["route"], registry=REGISTRY)
BREAKER_OPEN = Gauge("tessera_connection_breaker_open", "1 while a connection's circuit breaker is open", ["connection"], registry=REGISTRY)
