"""Alerts: rules as data, evaluated on ingest, with a lifecycle and delivery.

For the pages (and anything else in the hub process) the front is `AlertService`, found at
`request.app.state.alerts` in a route:

    service: AlertService = request.app.state.alerts
    service.alerts("open")                 # list[Alert], newest first
    service.alert(id), service.events(id)  # one alert, its history
    service.acknowledge(id, actor, note)   # -> Alert (NotOpen when resolved, NotFound)
    service.resolve(id, actor, note)
    service.rules(), service.create_rule(doc, actor), service.update_rule(...), ...
    service.counts()                       # {"firing": n, "acknowledged": n, "resolved": n}

Rule documents and kinds: docs/alerts.md.
"""

from hub.alerts._delivery import (
    CHANNEL_TYPES,
    DeliveryError,
    DeliverySettings,
    DeliveryStats,
    Dispatcher,
    sign,
    verify,
)
from hub.alerts._engine import (
    SYSTEM,
    AlertEngine,
    AlertSettings,
    EngineStats,
    Notification,
    default_kind,
)
from hub.alerts._hub import Alerting
from hub.alerts._rules import (
    GATEWAY_KINDS,
    KINDS,
    METER_FLAGS,
    SENSOR_KINDS,
    SEVERITIES,
    Rule,
    RuleError,
    Scope,
    parse_rule,
)
from hub.alerts._service import AlertService, NotFound, NotOpen
from hub.alerts._store import (
    ACKNOWLEDGED,
    FIRING,
    OPEN_STATES,
    RESOLVED,
    STATES,
    Alert,
    AlertEvent,
    AlertStore,
    Channel,
    DeadLetter,
    RuleVersion,
)

__all__ = [
    "ACKNOWLEDGED",
    "CHANNEL_TYPES",
    "FIRING",
    "GATEWAY_KINDS",
    "KINDS",
    "METER_FLAGS",
    "OPEN_STATES",
    "RESOLVED",
    "SENSOR_KINDS",
    "SEVERITIES",
    "STATES",
    "SYSTEM",
    "Alert",
    "AlertEngine",
    "AlertEvent",
    "AlertService",
    "AlertSettings",
    "AlertStore",
    "Alerting",
    "Channel",
    "DeadLetter",
    "DeliveryError",
    "DeliverySettings",
    "DeliveryStats",
    "Dispatcher",
    "EngineStats",
    "NotFound",
    "NotOpen",
    "Notification",
    "Rule",
    "RuleError",
    "RuleVersion",
    "Scope",
    "default_kind",
    "parse_rule",
    "sign",
    "verify",
]
