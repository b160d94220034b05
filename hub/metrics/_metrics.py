"""Prometheus metrics of the hub (prometheus-client), at GET /metrics.

Three sources, one registry per hub (never the library's global one: several hubs may run in
one process, in tests):

- what the hub measures as it works: commit latency and ingest lag (an ingest observer), HTTP
  latency, responses by route and status, authentication failures (an HTTP middleware);
- the counters the hub keeps anyway (IngestStats, the alert engine's and delivery's stats),
  read at scrape time;
- the gateways' own figures, from their latest state messages (storage), read at scrape time
  and exported per gateway.

Names follow Prometheus conventions: `estran_hub_*` for the hub, `estran_gateway_*` for the
gateways; counters end in `_total`, durations are in seconds, sizes in bytes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector

from hub.storage import GatewayState, IngestBatch, Storage

if TYPE_CHECKING:
    from hub._ingest import IngestStats
    from hub.alerts import Alerting

log = logging.getLogger("estran.hub.metrics")

# Footprint figures the gateways send (edge/health HealthRegistry.footprint), as metrics:
# figure -> (metric name, type, help). Other figures go to estran_gateway_figure{name}.
GATEWAY_FIGURES: dict[str, tuple[str, str, str]] = {
    "cpu_s": ("estran_gateway_cpu_seconds_total", "counter", "CPU time of the daemon"),
    "bytes_sent": ("estran_gateway_sent_bytes_total", "counter", "bytes the uplink sent"),
    "flash_write_bytes": (
        "estran_gateway_flash_written_bytes_total",
        "counter",
        "bytes the buffer wrote to flash",
    ),
    "io_write_bytes": (
        "estran_gateway_io_written_bytes_total",
        "counter",
        "bytes the daemon wrote (all files)",
    ),
    "samples": ("estran_gateway_samples_total", "counter", "readings taken from the sensors"),
    "reported": ("estran_gateway_reported_total", "counter", "readings acknowledged by the hub"),
    "dropped": ("estran_gateway_dropped_total", "counter", "readings the gateway had to drop"),
    "rss_bytes": ("estran_gateway_resident_memory_bytes", "gauge", "resident memory"),
    "uptime_s": ("estran_gateway_uptime_seconds", "gauge", "time since the daemon started"),
    "buffer_bytes": ("estran_gateway_buffer_bytes", "gauge", "bytes held in the buffer"),
    "quota_bytes": ("estran_gateway_buffer_quota_bytes", "gauge", "the buffer's quota"),
}
INGEST_NAMES = {"storage_errors": "estran_hub_storage_errors"}
INGEST_HELP = {
    "messages": "MQTT messages received by ingest",
    "batches": "data batches committed",
    "readings": "readings committed (resends included)",
    "inserted": "readings inserted",
    "duplicates": "resent readings already stored",
    "erased": "resent readings of ranges erased on request, dropped",
    "states": "gateway state messages recorded",
    "acks": "acknowledgements sent",
    "storage_errors": "ingest transactions that failed (nothing acknowledged)",
    "implausible_time": "readings stored with an implausible time (never latest)",
    "not_a_number": "readings whose value is not a number (NaN)",
    "conflicts": "resent sequences whose values differ from the stored ones",
    "dropped": "messages ingest had to drop",
}
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
LAG_BUCKETS = (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class HubMetrics:
    """The hub's registry. `metrics.committed/state` make it an ingest observer;
    `metrics.install(app)` adds the middleware and GET /metrics."""

    def __init__(
        self,
        stats: IngestStats,
        storage: Storage | None = None,
        alerting: Alerting | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.stats = stats
        self.storage = storage
        self.alerting = alerting
        self.auth: Callable[[], dict[str, object]] | None = None  # hub.auth AuthStats.as_dict
        r = self.registry
        self.commit_seconds = Histogram(
            "estran_hub_db_commit_seconds",
            "time to commit one ingest transaction",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag_seconds = Histogram(
            "estran_hub_ingest_lag_seconds",
            "from a live batch's newest reading to its commit",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.http_seconds = Histogram(
            "estran_hub_http_request_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.http_responses = Counter(
            "estran_hub_http_responses",
            "HTTP responses by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_errors = Counter(
            "estran_hub_http_errors",
            "HTTP responses with a 5xx status, or requests that raised",
            ["method", "route"],
            registry=r,
        )
        self.auth_failures = Counter(
            "estran_hub_auth_failures",
            "requests refused for want of credentials (401) or rights (403)",
            ["route", "status"],
            registry=r,
        )
        r.register(_Collected(self))

    # -- the ingest observer ----------------------------------------------------------------

    def committed(self, batches: Sequence[IngestBatch], seconds: float) -> None:
        self.commit_seconds.observe(seconds)
        now = time.time()
        for batch in batches:
            if not batch.historical and batch.ts_ms:
                self.lag_seconds.observe(max(0.0, now - max(batch.ts_ms) / 1000))

    def state(self, gateway: str, state: GatewayState, applied: bool) -> None:
        pass

    # -- HTTP -------------------------------------------------------------------------------

    def install(self, app: FastAPI) -> None:
        metrics = self

        @app.middleware("http")
        async def measure(
            request: Request, call_next: Callable[[Request], Awaitable[Response]]
        ) -> Response:
            started = time.perf_counter()
            method = request.method if request.method in _METHODS else "OTHER"
            try:
                response = await call_next(request)
            except Exception:
                metrics.http_errors.labels(method, _route(request)).inc()
                raise
            route = _route(request)
            metrics.http_seconds.labels(method, route).observe(time.perf_counter() - started)
            status = response.status_code
            metrics.http_responses.labels(method, route, str(status)).inc()
            if status >= 500:
                metrics.http_errors.labels(method, route).inc()
            if status in (401, 403):
                metrics.auth_failures.labels(route, str(status)).inc()
            return response

        @app.get("/metrics", include_in_schema=False)
        def scrape() -> Response:
            return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _route(request: Request) -> str:
    """The route's template (/api/v1/alerts/{alert_id}), never the raw path: bounded labels."""
    route = request.scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class _Collected(Collector):
    """Counters kept elsewhere, read at each scrape."""

    def __init__(self, metrics: HubMetrics) -> None:
        self.m = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._ingest()
        yield from self._auth()
        yield from self._alerts()
        yield from self._gateways()

    def _ingest(self) -> Iterator[Metric]:
        """Every counter of IngestStats, as `estran_hub_ingest_<name>_total` (a counter it
        gains later is exported without a change here); `rejected` by reason."""
        figures = self.m.stats.as_dict()
        for name, value in figures.items():
            if isinstance(value, bool) or not isinstance(value, int):
                continue
            metric = INGEST_NAMES.get(name, f"estran_hub_ingest_{name}")
            text = INGEST_HELP.get(name, f"ingest: {name.replace('_', ' ')}")
            yield CounterMetricFamily(metric, text, value=value)
        rejected = CounterMetricFamily(
            "estran_hub_ingest_rejected", "payloads dropped, by reason", labels=["reason"]
        )
        by_reason = figures.get("rejected")
        if isinstance(by_reason, dict):
            for reason, n in sorted(by_reason.items()):
                rejected.add_metric([str(reason)], float(n))
        yield rejected

    def _auth(self) -> Iterator[Metric]:
        if self.m.auth is None:
            return
        stats = self.m.auth()
        refused = CounterMetricFamily(
            "estran_hub_auth_refused",
            "credentials refused, by reason (hub.auth: malformed, unknown, expired, revoked…)",
            labels=["reason"],
        )
        failures = stats.get("failures")
        if isinstance(failures, dict):
            for reason, n in sorted(failures.items()):
                refused.add_metric([str(reason)], float(n))
        yield refused
        for key, name, text in (
            ("rate_limited", "estran_hub_auth_rate_limited", "requests refused after failures"),
            ("csrf_refused", "estran_hub_auth_csrf_refused", "forms without their CSRF token"),
        ):
            value = stats.get(key)
            if isinstance(value, int):
                yield CounterMetricFamily(name, text, value=value)

    def _alerts(self) -> Iterator[Metric]:
        a = self.m.alerting
        if a is None:
            return
        open_ = GaugeMetricFamily(
            "estran_hub_alerts", "open alerts by state and severity", labels=["state", "severity"]
        )
        counts: dict[tuple[str, str], int] = {}
        for alert in a.engine.open_alerts():
            key = (alert.state, alert.severity)
            counts[key] = counts.get(key, 0) + 1
        for state in ("firing", "acknowledged"):
            for severity in ("info", "warning", "critical"):
                open_.add_metric([state, severity], counts.get((state, severity), 0))
        yield open_
        e = a.engine.stats
        for name, value, text in (
            ("estran_hub_alerts_fired", e.fired, "alerts fired"),
            ("estran_hub_alerts_resolved", e.resolved, "alerts resolved"),
            ("estran_hub_alerts_flaps", e.flaps, "conditions back before an alert resolved"),
            ("estran_hub_alert_transitions_dropped", e.write_dropped, "transitions not written"),
            ("estran_hub_alert_evaluation_errors", e.observer_errors, "evaluation failures"),
        ):
            yield CounterMetricFamily(name, text, value=value)
        d = a.dispatcher.stats
        yield CounterMetricFamily(
            "estran_hub_alert_delivery_dropped",
            "notifications dropped because the delivery queue was full",
            value=d.dropped,
        )
        for name, counter, text in (
            (
                "estran_hub_alert_deliveries",
                d.delivered,
                "notifications delivered, by channel type",
            ),
            ("estran_hub_alert_delivery_failures", d.failures, "failed attempts, by channel type"),
            ("estran_hub_alert_dead_letters", d.dead, "notifications given up, by channel type"),
        ):
            family = CounterMetricFamily(name, text, labels=["type"])
            for type_ in ("webhook", "mqtt", "email", "sms"):
                family.add_metric([type_], counter.get(type_, 0))
            yield family

    def _gateways(self) -> Iterator[Metric]:
        storage = self.m.storage
        if storage is None:
            return
        try:
            gateways = storage.gateways()
        except Exception as e:
            log.warning("metrics: gateways not read: %s", e)
            return
        by_state = GaugeMetricFamily("estran_hub_gateways", "gateways by state", labels=["state"])
        counts = {"online": 0, "offline": 0, "unknown": 0}
        for g in gateways:
            counts[g.state] = counts.get(g.state, 0) + 1
        for state, n in sorted(counts.items()):
            by_state.add_metric([state], n)
        yield by_state
        online = GaugeMetricFamily(
            "estran_gateway_online", "1 when the gateway is online", labels=["gateway"]
        )
        backlog = GaugeMetricFamily(
            "estran_gateway_backlog",
            "readings not yet acknowledged, as reported",
            labels=["gateway"],
        )
        held = GaugeMetricFamily(
            "estran_gateway_readings_stored", "readings the hub holds", labels=["gateway"]
        )
        rejected = CounterMetricFamily(
            "estran_gateway_rejected", "payloads the hub dropped", labels=["gateway", "reason"]
        )
        families: dict[str, Any] = {}
        other = GaugeMetricFamily(
            "estran_gateway_figure", "other footprint figures", labels=["gateway", "name"]
        )
        sources = GaugeMetricFamily(
            "estran_gateway_source_status",
            "1 for the status each source reported (ok, degraded, down)",
            labels=["gateway", "source", "status"],
        )
        for g in gateways:
            online.add_metric([g.gateway], 1 if g.state == "online" else 0)
            if g.backlog is not None:
                backlog.add_metric([g.gateway], g.backlog)
            held.add_metric([g.gateway], g.readings)
            for reason, n in sorted(g.rejected.items()):
                rejected.add_metric([g.gateway, reason], n)
            for figure, value in sorted((g.footprint or {}).items()):
                known = GATEWAY_FIGURES.get(figure)
                if known is None:
                    other.add_metric([g.gateway, figure], value)
                    continue
                name, kind, text = known
                family = families.get(name)
                if family is None:
                    cls = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                    family = families[name] = cls(name, text, labels=["gateway"])
                family.add_metric([g.gateway], value)
            for source in g.sources or ():
                for status in ("ok", "degraded", "down"):
                    sources.add_metric(
                        [g.gateway, source.name, status], 1 if source.status == status else 0
                    )
        yield online
        yield backlog
        yield held
        yield rejected
        yield from families.values()
        yield other
        yield sources


__all__ = ["GATEWAY_FIGURES", "HubMetrics"]
