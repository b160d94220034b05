"""The central service: MQTT ingest, storage, HTTP API, alerts, dashboard."""

from hub._errors import ConfigError, HubError, StorageError

__all__ = ["ConfigError", "HubError", "StorageError"]
