"""The gateway daemon: supervised sources, report strategies, the buffer writer, the uplink,
the status socket, systemd integration, SIGHUP reload and clean shutdown.

    python -m edge.daemon --config /etc/estran/edge.toml     (estran edge run does the same)
"""

from edge.daemon._daemon import (
    EX_RESTART,
    ApplyOutcome,
    Daemon,
    DaemonUplink,
    Wiring,
    buffer_status,
)
from edge.daemon._intake import Intake, SensorPipeline
from edge.daemon._logging import JournalFormatter, setup_logging, under_journald
from edge.daemon._main import EX_CONFIG, main, run_daemon
from edge.daemon._notify import SystemdNotifier
from edge.daemon._strategy import (
    AggregateReporter,
    ChangeReporter,
    EveryReporter,
    Reporter,
    make_reporter,
)
from edge.daemon._supervisor import Supervisor, TaskSpec
from edge.daemon._wiring import default_wiring
from edge.daemon._writer import BufferWriter, WriterStats

__all__ = [
    "EX_CONFIG",
    "EX_RESTART",
    "AggregateReporter",
    "ApplyOutcome",
    "BufferWriter",
    "ChangeReporter",
    "Daemon",
    "DaemonUplink",
    "EveryReporter",
    "Intake",
    "JournalFormatter",
    "Reporter",
    "SensorPipeline",
    "Supervisor",
    "SystemdNotifier",
    "TaskSpec",
    "Wiring",
    "WriterStats",
    "buffer_status",
    "default_wiring",
    "main",
    "make_reporter",
    "run_daemon",
    "setup_logging",
    "under_journald",
]
