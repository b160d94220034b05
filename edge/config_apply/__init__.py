"""The gateway's configuration transaction: verify, apply only what changed, health gate,
roll back, report. See `edge.config_apply._transaction` for the steps.

    applier = ConfigApplier(state, daemon_target, gateway_id)
    outcome = await applier.handle_config(message)   # from estran/v1/gw/<id>/config
    if outcome: await client.publish(report_topic, report_message(outcome))
"""

from edge.config_apply._agent import FleetAgent, JobHandler, no_commands
from edge.config_apply._commands import DaemonCommands, DaemonHooks
from edge.config_apply._daemon import ApplyError, DaemonTarget, overlay
from edge.config_apply._link import enrolled, fleet_link
from edge.config_apply._transaction import (
    ConfigApplier,
    ConfigTarget,
    Outcome,
    changed_sections,
    report_message,
)
from edge.config_apply._verify import Refused, verify_signed

__all__ = [
    "ApplyError",
    "ConfigApplier",
    "ConfigTarget",
    "DaemonCommands",
    "DaemonHooks",
    "DaemonTarget",
    "FleetAgent",
    "JobHandler",
    "Outcome",
    "Refused",
    "changed_sections",
    "enrolled",
    "fleet_link",
    "no_commands",
    "overlay",
    "report_message",
    "verify_signed",
]
