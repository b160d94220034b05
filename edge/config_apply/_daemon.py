"""The daemon as a `ConfigTarget`: the technician's file with the hub's document laid over it,
handed to the daemon's public `apply(config)` (only the sources whose settings changed
restart; the buffer is never reopened; buffer settings wait for a restart), and a health gate
on the daemon's health registry.

One-way: the daemon starts the fleet link (edge.config_apply.fleet_link) and this package
never imports edge.daemon; it knows the daemon through the protocols below, which
`edge.daemon.Daemon` meets.

Overlay: `protocols.settings.merge`, the very function the hub merges its layers with
(docs/fleet.md): tables merge key by key, anything else replaces, null deletes. The
gateway-only fields (`local` in the schema: `gateway.id`, `data_dir`, `uplink.broker`,
`uplink.credentials_file`, `uplink.ca_file`) stay the technician's: the hub cannot set them
(`settings.for_gateway` drops them, and the hub-only `apply` table).
"""

from __future__ import annotations

import asyncio
import time
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from edge.config import EdgeConfig, parse_config
from edge.errors import EdgeError
from edge.health import HealthRegistry
from protocols import settings


class ApplyError(EdgeError):
    """The daemon could not take the configuration."""


class Applied(Protocol):
    """What the daemon says of a configuration it was given (edge.daemon.ApplyOutcome)."""

    @property
    def ok(self) -> bool: ...
    @property
    def error(self) -> str | None: ...  # why it was refused


class DaemonLike(Protocol):
    """The daemon as a configuration target (edge.daemon.Daemon)."""

    health: HealthRegistry

    async def apply(self, config: EdgeConfig) -> Applied:
        """Run `config` from now on, changing only what changed."""


def overlay(base: Mapping[str, object], layer: Mapping[str, object]) -> dict[str, object]:
    """`base` with `layer` over it: tables merge, other values replace, null deletes."""
    return settings.merge(dict(base), dict(layer))


class DaemonTarget:
    """Apply hub configurations to a running `edge.daemon.Daemon` started from `local_path`."""

    def __init__(self, daemon: DaemonLike, local_path: Path, *, settle_s: float = 1.0) -> None:
        self.daemon = daemon
        self.local_path = local_path
        self.settle_s = settle_s

    def compose(self, config: Mapping[str, object]) -> EdgeConfig:
        """The configuration the daemon runs for the hub's `config` (ConfigError if invalid)."""
        with self.local_path.open("rb") as f:
            base = tomllib.load(f)
        merged = overlay(base, settings.for_gateway(dict(config)))
        return parse_config(merged, source="hub configuration", path=self.local_path)

    async def apply(self, config: Mapping[str, object], changed: frozenset[str]) -> None:
        try:
            new = self.compose(config)
        except Exception as e:
            raise ApplyError(str(e)) from e
        outcome = await self.daemon.apply(new)
        if not outcome.ok:
            raise ApplyError(outcome.error or "the daemon refused the configuration")

    def problems(self) -> list[str]:
        """What is not up now: sources not "up", an uplink not connected."""
        out = []
        for name, source in sorted(self.daemon.health.sources.items()):
            if source.state != "up":
                detail = f" ({source.detail})" if source.detail else ""
                out.append(f"{name} {source.state}{detail}")
        provider = self.daemon.health.uplink
        if provider is not None:
            state = provider().get("state")
            if state not in (None, "connected", "disabled"):
                out.append(f"uplink {state}")
        return out

    async def health(self, timeout: float) -> str | None:
        """None once everything stayed up for `settle_s`, else what was down at `timeout`."""
        deadline = time.monotonic() + timeout
        up_since: float | None = None
        while True:
            now = time.monotonic()
            problems = self.problems()
            if problems:
                up_since = None
            elif up_since is None:
                up_since = now
            if up_since is not None and now - up_since >= self.settle_s:
                return None
            if now >= deadline:
                return ", ".join(problems) or f"not steady for {self.settle_s:g} s"
            await asyncio.sleep(min(0.1, max(deadline - now, 0.01)))


__all__ = ["Applied", "ApplyError", "DaemonLike", "DaemonTarget", "overlay"]
