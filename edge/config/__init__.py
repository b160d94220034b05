"""The gateway's configuration file: TOML, typed, validated with errors that name the field.

    config = load_config("/etc/estran/edge.toml")   # raises ConfigError listing every problem

See docs/configuration.md for the file format and a full example per sensor kind.
"""

from edge.config._errors import ConfigError, ConfigIssue
from edge.config._load import (
    DEFAULT_CONFIG,
    DEFAULT_DATA_DIR,
    BleSection,
    EdgeConfig,
    load_config,
    parse_config,
)
from edge.config._model import (
    AGGREGATES,
    Aggregate,
    BufferSection,
    DaemonSection,
    GatewaySection,
    Location,
    ReportMode,
    ReportStrategy,
    SensorConfig,
    UplinkSection,
)
from edge.config._restart import pending_restart, restart_tables

__all__ = [
    "AGGREGATES",
    "DEFAULT_CONFIG",
    "DEFAULT_DATA_DIR",
    "Aggregate",
    "BleSection",
    "BufferSection",
    "ConfigError",
    "ConfigIssue",
    "DaemonSection",
    "EdgeConfig",
    "GatewaySection",
    "Location",
    "ReportMode",
    "ReportStrategy",
    "SensorConfig",
    "UplinkSection",
    "load_config",
    "parse_config",
    "pending_restart",
    "restart_tables",
]
