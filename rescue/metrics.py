"""Prometheus metrics of one worker process."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_LATENCY_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.0075,
    0.01,
    0.015,
    0.02,
    0.03,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


class Metrics:
    """The metrics this service exports, in a registry of its own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "rescue_http_requests_total",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "rescue_http_request_duration_seconds",
            "Time to answer an HTTP request, by route.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.alerts = Counter(
            "rescue_alerts_total",
            "Alerts received, by outcome (created, replayed, degraded).",
            ["outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "rescue_events_total",
            "Events handled by the bus consumers, by consumer group and result.",
            ["group", "result"],
            registry=self.registry,
        )
        self.aed_index_size = Gauge(
            "rescue_aed_index_size",
            "AEDs in this worker's in-memory index.",
            registry=self.registry,
        )
        self.websockets = Gauge(
            "rescue_websockets_open",
            "Open WebSockets on this worker.",
            ["kind"],
            registry=self.registry,
        )
        # labels() costs ~2 µs a call (validation, a lock, a dict of tuples); every request
        # used it twice. The children are cached by their labels instead (same series).
        self._request_children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request and record its duration, by method, route and status."""
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = self._request_children[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition."""
        return generate_latest(self.registry)
