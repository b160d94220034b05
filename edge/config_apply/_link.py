"""The fleet link of a running daemon: started by the daemon (a supervised core task named
`fleet`) when its data directory holds an enrollment (`estran edge enroll`).

It re-applies the last configuration the hub sent (the daemon starts from the technician's
file alone), then runs the `FleetAgent` with a `DaemonTarget`: signed configurations are
verified and applied as transactions, commands run, outcomes reported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from edge.config import EdgeConfig
from edge.config_apply._agent import FleetAgent, JobHandler
from edge.config_apply._commands import DaemonCommands, DaemonHooks
from edge.config_apply._daemon import DaemonLike, DaemonTarget
from edge.config_apply._transaction import ConfigApplier
from edge.identity import CREDENTIALS_FILE, HUB_CA_FILE, STATE_FILE, GatewayState
from protocols import settings

log = logging.getLogger("estran.edge.fleet")


class FleetDaemon(DaemonLike, DaemonHooks, Protocol):
    """The daemon as the fleet link sees it: a configuration target and command hooks."""


def enrolled(data_dir: Path) -> bool:
    return (data_dir / STATE_FILE).exists() and (data_dir / CREDENTIALS_FILE).exists()


def fleet_link(
    daemon: FleetDaemon,
    config: EdgeConfig,
    *,
    updates: Callable[[str], JobHandler] | None = None,
) -> Callable[[], Coroutine[Any, Any, None]] | None:
    """The `fleet` task of `daemon`, or None when the gateway is not enrolled (or the daemon
    was not started from a file, which the hub's documents are laid over). `updates(id)`
    makes the handler of pull-mode update jobs (`edge.update.UpdateAgent`)."""
    data_dir = config.gateway.data_dir
    local = config.path
    if local is None or not enrolled(data_dir):
        return None

    async def run() -> None:
        state = GatewayState(data_dir)
        try:
            ident = state.identity()
            if ident is None:
                log.warning("fleet link: %s holds no enrollment", data_dir)
                return
            if ident.gateway_id != config.gateway.id:
                log.error(
                    "fleet link: enrolled as %s but gateway.id is %s: fix the file",
                    ident.gateway_id,
                    config.gateway.id,
                )
            text = (data_dir / CREDENTIALS_FILE).read_text().strip()
            username, _, password = text.partition(":")
            try:
                host, port, tls = settings.parse_broker(ident.broker)
            except ValueError as e:
                log.error("fleet link: the enrolled broker %s: %s", ident.broker, e)
                return
            target = DaemonTarget(daemon, local)
            current = state.config().current
            if current:  # the daemon started from the technician's file alone
                try:
                    await target.apply(current, frozenset(current))
                except Exception as e:
                    log.error("fleet link: the last configuration does not apply: %s", e)
            applier = ConfigApplier(state, target, ident.gateway_id)
            commands = DaemonCommands(daemon)
            ca = data_dir / HUB_CA_FILE
            agent = FleetAgent(
                applier, host, port,
                username, password, commands=commands, after_report=commands.after_report,
                updates=updates(ident.gateway_id) if updates is not None else None,
                tls=tls, tls_ca=ca if ca.exists() else None,
            )  # fmt: skip
            await agent.run()
        finally:
            state.close()

    return run


__all__ = ["enrolled", "fleet_link"]
