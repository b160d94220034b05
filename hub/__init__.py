"""The central service: MQTT ingest, storage, HTTP API, alerts, dashboard."""

__all__: list[str] = []
