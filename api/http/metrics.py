"""Prometheus metrics: the counters other routes increment, and the catalog figures read at scrape time.

Counters and gauges that only the server process knows (bytes received,
uploads in progress, refusals) live here, in one registry per process, so
every router increments the same objects. Catalog figures (items by state,
queue depth, the oldest job, the checkpoint's age) are not kept: a collector
reads them from the catalog when `/metrics` is scraped, with a few cheap
aggregate queries, so several API processes behind a proxy agree.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry(auto_describe=True)

BYTES_RECEIVED = Counter(
    "evidence_bytes_received", "Upload bytes accepted (tus PATCH bodies and WebDAV PUTs), after checks.",
    registry=REGISTRY,
)
UPLOADS_IN_PROGRESS = Gauge(
    "evidence_uploads_in_progress", "Upload requests this process is serving now (tus PATCH, WebDAV PUT).",
    registry=REGISTRY,
)
REFUSALS = Counter(
    "evidence_refusals", "Requests refused, by reason (missing, unknown, expired, revoked, scheme, role, "
    "unrouted, too_large, rate, checksum, offset …).", ["reason"], registry=REGISTRY,
)
REQUESTS = Counter(
    "evidence_http_requests", "HTTP responses, by status class (2xx, 4xx, 5xx).", ["status"], registry=REGISTRY,
)


def refuse(reason: str) -> None:
    """Count one refusal (a stable, low-cardinality reason code: never anything from the request)."""
    REFUSALS.labels(reason).inc()


class CatalogCollector(Collector):
    """Catalog figures read at scrape time through `figures()` (a callable so the app supplies its runtime)."""

    def __init__(self, figures: Callable[[], dict[str, Any]]) -> None:
        self._figures = figures

    def describe(self) -> Iterator[Any]:
        return iter(())  # unchecked collector: the families depend on the catalog's state

    def collect(self) -> Iterator[Any]:
        try:
            found = self._figures()
        except Exception:  # noqa: BLE001 - a scrape must answer even when the catalog does not
            up = GaugeMetricFamily("evidence_catalog_up", "Whether the catalog answered this scrape.")
            up.add_metric([], 0)
            yield up
            return
        up = GaugeMetricFamily("evidence_catalog_up", "Whether the catalog answered this scrape.")
        up.add_metric([], 1)
        yield up
        items = GaugeMetricFamily("evidence_items", "Items in the catalog, by state.", labels=["state"])
        for state, count in sorted(found.get("items", {}).items()):
            items.add_metric([str(state)], count)
        yield items
        jobs = GaugeMetricFamily("evidence_queue_jobs", "Jobs in the durable queue, by state.", labels=["state"])
        for state, count in sorted(found.get("jobs", {}).items()):
            jobs.add_metric([str(state)], count)
        yield jobs
        depth = GaugeMetricFamily("evidence_queue_depth", "Jobs waiting or running (not finished).")
        depth.add_metric([], found.get("queue_depth", 0))
        yield depth
        oldest = GaugeMetricFamily("evidence_queue_oldest_job_age_seconds",
                                   "Age of the oldest unfinished job that is due (0 when none).")
        oldest.add_metric([], found.get("oldest_job_age", 0.0))
        yield oldest
        events = GaugeMetricFamily("evidence_log_size", "Custody events in the log.")
        events.add_metric([], found.get("log_size", 0))
        yield events
        age = found.get("checkpoint_age")
        if age is not None:
            family = GaugeMetricFamily("evidence_checkpoint_age_seconds", "Age of the latest signed checkpoint.")
            family.add_metric([], age)
            yield family
        behind = GaugeMetricFamily("evidence_checkpoint_behind_events",
                                   "Custody events not yet covered by a signed checkpoint.")
        behind.add_metric([], found.get("checkpoint_behind", 0))
        yield behind
        open_uploads = found.get("uploads_open")
        if open_uploads is not None:
            family = GaugeMetricFamily("evidence_uploads_open", "Uploads begun and neither done nor expired.")
            family.add_metric([], open_uploads)
            yield family
