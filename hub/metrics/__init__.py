"""Prometheus metrics of the hub and of the gateways, at GET /metrics (docs/hub.md#metrics)."""

from hub.metrics._metrics import GATEWAY_FIGURES, HubMetrics

__all__ = ["GATEWAY_FIGURES", "HubMetrics"]
