"""The configuration transaction of the gateway.

A signed configuration from the hub is verified against the pinned hub keys and refused if
it is unsigned, badly signed, for another gateway, or not newer than the newest one already
seen (a replay). Then, as a transaction:

1. snapshot: the running document is the last good one (the state file says so, atomically);
2. apply only what changed: `ConfigTarget.apply(document, changed_sections)`; the target
   (the daemon) restarts the sources whose settings changed and never rebuilds the buffer;
3. health gate: `ConfigTarget.health(timeout)` waits until sources and uplink are up, or says
   why not; the time limit is `apply.health_timeout` of the new document (default 30 s);
4. if the apply raised or the gate failed: apply the last good document again (same changed
   sections) and report `rolled_back` with the reason; if that fails too, `failed`.

Every outcome is reported to the hub (`report_message`). Commands on `cmd` are verified the
same way, run once (their sequence number only grows) and reported.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from edge.config_apply._verify import Refused, verify_signed
from edge.identity import ConfigState, GatewayState
from protocols import settings, signed, wire
from protocols.errors import ProtocolError

log = logging.getLogger("estran.edge.config_apply")

DEFAULT_HEALTH_TIMEOUT_S: float = settings.defaults("apply")["health_timeout"]  # type: ignore[assignment]
APPLY_TIMEOUT_S = 60.0


class ConfigTarget(Protocol):
    """What runs the configuration (the daemon implements it)."""

    async def apply(self, config: Mapping[str, object], changed: frozenset[str]) -> None:
        """Run `config`, touching only the top-level `changed` sections; raise if it cannot."""

    async def health(self, timeout: float) -> str | None:
        """Wait until what was applied is up (sources, uplink): None, or why not after
        `timeout` seconds."""


CommandRunner = Callable[[str, Mapping[str, object]], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str  # "config" or "cmd"
    outcome: str  # protocols.signed: APPLIED, ROLLED_BACK, REFUSED, FAILED, DONE
    reason: str
    version: int | None  # of the document answered (config version or command seq)
    applied_version: int | None  # configuration version running now

    def report(self, ts_ms: int | None = None) -> dict[str, object]:
        ts = int(time.time() * 1000) if ts_ms is None else ts_ms
        return signed.report(
            self.kind, self.outcome, self.reason, self.version, self.applied_version, ts
        )


def report_message(outcome: Outcome) -> bytes:
    """The wire message for the gateway's `report` topic."""
    return wire.encode_envelope(wire.Envelope.of(wire.REPORT, outcome.report()))


def changed_sections(old: Mapping[str, object], new: Mapping[str, object]) -> frozenset[str]:
    return frozenset(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def _health_timeout(config: Mapping[str, object]) -> float:
    """`apply.health_timeout` of the document, as the hub's schema reads it (seconds)."""
    value = settings.section(dict(config), "apply")["health_timeout"]
    return float(value) if isinstance(value, int | float) else DEFAULT_HEALTH_TIMEOUT_S


class _AlreadySeen(Exception):
    """The verified document is the one handled last: nothing to do, nothing to report."""


class ConfigApplier:
    """Verify and apply the hub's configurations and commands for one gateway."""

    def __init__(
        self,
        state: GatewayState,
        target: ConfigTarget,
        gateway_id: str,
        *,
        apply_timeout_s: float = APPLY_TIMEOUT_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.target = target
        self.gateway_id = gateway_id
        self.apply_timeout_s = apply_timeout_s
        self._clock = clock
        self._lock = asyncio.Lock()

    # -- configuration ------------------------------------------------------------------------

    def _verify_config(self, payload: bytes, cs: ConfigState) -> tuple[int, dict[str, object]]:
        try:
            env = wire.decode_envelope(payload, wire.CONFIG)
        except ProtocolError as e:
            raise Refused(f"not a config message: {e}") from e
        doc, _kid = verify_signed(env.body, signed.CONTEXT_CONFIG, self.state.trusted_keys())
        if doc.get("kind") != "config":
            raise Refused(f"not a configuration (kind {doc.get('kind')!r})")
        if doc.get("gateway") != self.gateway_id:
            raise Refused(f"meant for gateway {doc.get('gateway')!r}, not {self.gateway_id}")
        version = doc.get("version")
        config = doc.get("config")
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise Refused("no version")
        if not isinstance(config, dict):
            raise Refused("no configuration document")
        if version == cs.seen_version:
            raise _AlreadySeen
        if version < cs.seen_version:
            raise Refused(f"version {version} is not newer than {cs.seen_version}")
        keys = doc.get("keys")
        if keys is not None:
            self._update_trust(keys)
        return version, config

    def _update_trust(self, keys: object) -> None:
        if not isinstance(keys, dict) or not keys:
            raise Refused("malformed trusted keys")
        parsed: dict[str, bytes] = {}
        for kid, pub in keys.items():
            if not isinstance(kid, str) or not isinstance(pub, bytes) or len(pub) != 32:
                raise Refused("malformed trusted keys")
            if signed.key_id(pub) != kid:
                raise Refused(f"trusted key {kid} does not match its id")
            parsed[kid] = pub
        if parsed != self.state.trusted_keys():
            log.info("hub keys now trusted: %s", ", ".join(sorted(parsed)))
            self.state.set_trusted_keys(parsed)

    async def handle_config(self, payload: bytes) -> Outcome | None:
        """Process one message of the config topic. None when there is nothing to report:
        an empty (cleared) retained message, or the configuration already running (the
        broker sends the retained message again on every reconnect)."""
        async with self._lock:
            cs = self.state.config()
            if not payload:
                return None
            try:
                version, config = self._verify_config(payload, cs)
            except _AlreadySeen:
                return None  # the retained copy, sent again on every reconnect
            except Refused as e:
                log.warning("configuration refused: %s", e.reason)
                return Outcome(
                    "config",
                    signed.REFUSED,
                    e.reason,
                    _version_of(payload),
                    cs.current_version or None,
                )
            cs.seen_version = version
            self.state.set_config(cs)
            return await self._transaction(cs, version, config)

    async def apply_pending(self) -> Outcome | None:
        """Apply the configuration received at enrollment (or left by a crash)."""
        cs = self.state.config()
        if cs.applying is not None:  # a crash in the middle of a transaction
            log.warning("a transaction to version %d was cut short: last good runs", cs.applying)
            cs.current, cs.current_version = dict(cs.last_good), cs.last_good_version
            cs.applying = None
            self.state.set_config(cs)
        if cs.pending is None:
            return None
        payload = base64.b64decode(cs.pending)
        cs.pending = None
        self.state.set_config(cs)
        return await self.handle_config(payload)

    async def _transaction(
        self, cs: ConfigState, version: int, config: dict[str, object]
    ) -> Outcome:
        old = dict(cs.last_good)
        old_version = cs.last_good_version
        changed = changed_sections(old, config)
        if not changed:
            cs.current, cs.current_version = dict(config), version
            cs.last_good, cs.last_good_version = dict(config), version
            self.state.set_config(cs)
            return Outcome("config", signed.APPLIED, "no change", version, version)
        cs.applying = version
        self.state.set_config(cs)
        reason: str | None = None
        try:
            await asyncio.wait_for(self.target.apply(config, changed), self.apply_timeout_s)
        except TimeoutError:
            reason = f"apply took longer than {self.apply_timeout_s:g} s"
        except Exception as e:
            reason = f"apply failed: {e}"
        if reason is None:
            timeout = _health_timeout(config)
            try:
                reason = await asyncio.wait_for(self.target.health(timeout), timeout + 5.0)
            except TimeoutError:
                reason = f"not healthy within {timeout:g} s"
            if reason is not None:
                reason = f"health gate: {reason}"
        if reason is None:
            cs.current, cs.current_version = dict(config), version
            cs.last_good, cs.last_good_version = dict(config), version
            cs.applying = None
            self.state.set_config(cs)
            log.info("configuration %d applied (%s)", version, ", ".join(sorted(changed)))
            return Outcome(
                "config", signed.APPLIED, "changed " + ", ".join(sorted(changed)), version, version
            )
        log.warning("configuration %d: %s; rolling back to %d", version, reason, old_version)
        outcome = signed.ROLLED_BACK
        try:
            await asyncio.wait_for(self.target.apply(old, changed), self.apply_timeout_s)
        except Exception as e:  # the last good configuration does not come back
            outcome = signed.FAILED
            reason += f"; rollback failed: {e}"
            log.error("configuration %d: rollback to %d failed: %s", version, old_version, e)
        cs.current, cs.current_version = old, old_version
        cs.applying = None
        self.state.set_config(cs)
        return Outcome("config", outcome, reason, version, old_version or None)

    # -- commands -----------------------------------------------------------------------------

    async def handle_command(self, payload: bytes, run: CommandRunner) -> Outcome:
        """Verify a command, run it once (`run(name, args)` returns a short result)."""
        async with self._lock:
            cs = self.state.config()
            try:
                seq, name, args = self._verify_command(payload, cs)
            except Refused as e:
                log.warning("command refused: %s", e.reason)
                return Outcome("cmd", signed.REFUSED, e.reason, None, cs.current_version or None)
            cs.cmd_seq = seq
            self.state.set_config(cs)
        try:
            result = await asyncio.wait_for(run(name, args), self.apply_timeout_s)
        except Exception as e:
            return Outcome("cmd", signed.FAILED, f"{name}: {e!r}", seq, cs.current_version or None)
        return Outcome("cmd", signed.DONE, f"{name}: {result}", seq, cs.current_version or None)

    def _verify_command(
        self, payload: bytes, cs: ConfigState
    ) -> tuple[int, str, dict[str, object]]:
        try:
            env = wire.decode_envelope(payload, wire.CMD)
        except ProtocolError as e:
            raise Refused(f"not a command message: {e}") from e
        doc, _ = verify_signed(env.body, signed.CONTEXT_CMD, self.state.trusted_keys())
        if doc.get("kind") != "cmd" or doc.get("gateway") != self.gateway_id:
            raise Refused("a command for another gateway")
        seq, name, args = doc.get("seq"), doc.get("name"), doc.get("args", {})
        expires = doc.get("expires_ms")
        if not isinstance(seq, int) or not isinstance(name, str) or not isinstance(args, dict):
            raise Refused("malformed command")
        if seq <= cs.cmd_seq:
            raise Refused(f"command {seq} is not newer than {cs.cmd_seq} (replay)")
        if isinstance(expires, int) and expires < self._clock() * 1000:
            raise Refused(f"command {seq} has expired")
        return seq, name, args


def _version_of(payload: bytes) -> int | None:
    """The version a refused message claims (for the report), if it can be read at all."""
    try:
        env = wire.decode_envelope(payload, wire.CONFIG)
        v = signed.decode_signed(env.body).document().get("version")
    except ProtocolError:
        return None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


__all__ = [
    "ConfigApplier",
    "ConfigTarget",
    "Outcome",
    "Refused",
    "changed_sections",
    "report_message",
]
