"""One simulated gateway: the real buffer, uplink and fleet link, with a reading generator in
place of the serial and BLE sources.

What is real (the gateway's own code, imported, not re-written): its identity and gateway
state (`edge.identity`, as `estran edge enroll` left them), the buffer (`edge.buffer.SegmentLog`
in its data directory), the uplink (`edge.uplink.Uplink`: batches of blocks, end-to-end acks,
birth and the death Will), the fleet link (`edge.config_apply.FleetAgent` and `ConfigApplier`:
signed configuration verified, applied as a transaction, reported). What is simulated: the
sources (a generator appends `sensors` readings every `period_s`, divided by `speed` to
compress time) and the daemon the configuration is applied to (`SimTarget`: it runs no
sources, records the document, and its health gate is the uplink being connected).

Many of them share one asyncio loop (`estran.rig.swarm` runs hundreds per process).
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Collection, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from edge.buffer import BufferConfig, BufferStats, SegmentLog, StoredBlock
from edge.config_apply import ConfigApplier, FleetAgent, Outcome
from edge.identity import CREDENTIALS_FILE, GatewayState
from edge.uplink import Uplink, UplinkConfig
from estran.rig import RigError
from protocols.reading import Reading

log = logging.getLogger("estran.rig.swarm")

SOFTWARE = "swarm"
COMMIT_INTERVAL_S = 0.1  # the daemon's group commit (buffer.commit_interval)
POLL_INTERVAL_S = 10.0  # the uplink's look for new blocks nobody said were committed
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, float("inf"))


class AckTimer:
    """The buffer as the uplink sees it, timing each acknowledgement: from a reading's
    append to the ack that frees it (end to end: buffer commit, uplink, broker, hub commit,
    ack back, applied to the buffer). Counts per bucket of LAG_BUCKETS, for live readings
    (the newest sequence number of each acked range)."""

    def __init__(self, log: SegmentLog) -> None:
        self.log = log
        self.appended: deque[tuple[int, float]] = deque(maxlen=8192)
        self.lag_counts = [0] * len(LAG_BUCKETS)
        self.lag_max = 0.0
        self.on_commit: Callable[[], None] | None = None  # the uplink's `committed`

    def append(self, reading: Reading) -> int:
        seq = self.log.append(reading)
        self.appended.append((seq, time.monotonic()))
        return seq

    def read_blocks(
        self,
        after_seq: int,
        max_readings: int,
        *,
        alarms_first: bool = True,
        skip: Collection[int] = (),
    ) -> Sequence[StoredBlock]:
        return self.log.read_blocks(after_seq, max_readings, alarms_first=alarms_first, skip=skip)

    def ack(self, ranges: Iterable[tuple[int, int]]) -> None:
        ranges = list(ranges)
        now = time.monotonic()
        seqs = [s for s, _ in self.appended]
        for _, last in ranges:
            i = bisect.bisect_left(seqs, last)
            if i < len(seqs) and seqs[i] == last:
                lag = now - self.appended[i][1]
                self.lag_max = max(self.lag_max, lag)
                self.lag_counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        self.log.ack(ranges)

    def commit(self) -> int:
        seq = self.log.commit()
        if self.on_commit is not None:
            self.on_commit()
        return seq

    @property
    def durable_seq(self) -> int:
        return self.log.durable_seq

    def stats(self) -> BufferStats:
        return self.log.stats()


@dataclass(frozen=True, slots=True)
class Workload:
    """What each simulated gateway reads: `sensors` sensors, one reading each every
    `period_s` (simulated seconds), time compressed by `speed` (2.0: twice the rate)."""

    sensors: int = 10
    period_s: float = 60.0
    speed: float = 1.0

    @property
    def interval_s(self) -> float:
        """Wall-clock seconds between two readings of one sensor."""
        return self.period_s / self.speed


Producer = Callable[["SimGateway", AckTimer], Coroutine[Any, Any, None]]


class SimTarget:
    """The configuration target of a simulated gateway: it records the document it is given
    (no sources to restart), and passes its health gate once the uplink is connected."""

    def __init__(self, gateway: SimGateway) -> None:
        self.gateway = gateway
        self.applied: dict[str, object] = {}
        self.applies = 0

    async def apply(self, config: Mapping[str, object], changed: frozenset[str]) -> None:
        self.applied = dict(config)
        self.applies += 1

    async def health(self, timeout: float) -> str | None:
        uplink = self.gateway.uplink
        if uplink is None:
            return "uplink not started"
        try:
            await asyncio.wait_for(uplink.connected.wait(), timeout)
        except TimeoutError:
            return f"uplink not connected within {timeout:g} s"
        return None


class SimGateway:
    """`await SimGateway(data_dir, workload).run()` until cancelled. `data_dir` holds an
    enrollment (`estran.rig.swarm.enroll_gateway` or `estran edge enroll`)."""

    def __init__(
        self,
        data_dir: Path,
        workload: Workload,
        *,
        broker: str | None = None,
        seed: int = 0,
        fleet_link: bool = True,
        producer: Producer | None = None,
    ) -> None:
        """`producer`: what appends readings to the buffer (default: `workload`'s
        sensors); it counts them in `produced` and stops appending while not `producing`."""
        self.data_dir = data_dir
        self.workload = workload
        self.broker_override = broker
        self.fleet_link = fleet_link
        self.producer = producer
        self.random = random.Random(seed)
        self.gateway_id = ""
        self.uplink: Uplink | None = None
        self.agent: FleetAgent | None = None
        self.buffer: AckTimer | None = None
        self.target = SimTarget(self)
        self.produced = 0
        self.applied_version: int | None = None
        self.outcomes: dict[str, int] = {}  # reported by the fleet link, by outcome
        self._last_outcome: Outcome | None = None
        self.started = asyncio.Event()
        self.producing = True  # False: the sensors fall silent (the uplink drains on)

    # -- figures ---------------------------------------------------------------------------

    def _count_outcomes(self) -> None:
        """Count the outcomes the fleet link reported since the last call (it keeps its
        last 32, the one of the enrollment's configuration included)."""
        if self.agent is None or not self.agent.outcomes:
            return
        fresh: list[Outcome] = []
        for outcome in reversed(self.agent.outcomes):
            if outcome is self._last_outcome:
                break
            fresh.append(outcome)
        self._last_outcome = self.agent.outcomes[-1]
        for outcome in reversed(fresh):
            self.outcomes[outcome.outcome] = self.outcomes.get(outcome.outcome, 0) + 1
            if outcome.kind == "config" and outcome.applied_version is not None:
                self.applied_version = outcome.applied_version

    def figures(self) -> dict[str, object]:
        """What the swarm's status lines aggregate."""
        self._count_outcomes()
        up = self.uplink
        buf = self.buffer.stats() if self.buffer is not None else None
        return {
            "uplink": bool(up is not None and up.connected.is_set()),
            "fleet": bool(self.agent is not None and self.agent.connected.is_set()),
            "produced": self.produced,
            "acked": up.stats.acked_readings if up is not None else 0,
            "connects": up.stats.connects if up is not None else 0,
            "resent": up.stats.resent_batches if up is not None else 0,
            "ack_timeouts": up.stats.timeouts if up is not None else 0,
            "depth": buf.depth if buf is not None else 0,
            "buffer_bytes": buf.bytes if buf is not None else 0,
            "applied_version": self.applied_version,
            "lag_counts": self.buffer.lag_counts if self.buffer is not None else [],
            "lag_max": self.buffer.lag_max if self.buffer is not None else 0.0,
        }

    # -- running -----------------------------------------------------------------------------

    async def run(self) -> None:
        state = GatewayState(self.data_dir)
        try:
            ident = state.identity()
            if ident is None:
                raise RigError(f"{self.data_dir}: not enrolled (estran edge enroll)")
            self.gateway_id = ident.gateway_id
            username, _, password = (
                (self.data_dir / CREDENTIALS_FILE).read_text().strip().partition(":")
            )
            broker = self.broker_override or ident.broker
            url = urlsplit(broker if "://" in broker else "mqtt://" + broker)
            current = state.config().current_version
            self.applied_version = current or None
            with SegmentLog.open(
                BufferConfig(self.data_dir / "buffer", commit_interval_s=COMMIT_INTERVAL_S)
            ) as log_:
                buffer = self.buffer = AckTimer(log_)
                self.uplink = Uplink(
                    buffer,
                    UplinkConfig(
                        ident.gateway_id,
                        broker,
                        self.data_dir,
                        protocol="5",
                        state_interval_s=60.0,
                        software=SOFTWARE,
                        username=username,
                        password=password,
                        # the producer says when it committed (Uplink.committed): the
                        # poll is only the fallback, and thousands of gateways polling
                        # ten times a second were most of the swarm's CPU
                        poll_interval_s=POLL_INTERVAL_S,
                    ),
                )
                buffer.on_commit = self.uplink.committed
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.uplink.run(), name=f"{self.gateway_id}-uplink")
                    tg.create_task(
                        (self.producer or SimGateway._produce)(self, buffer),
                        name=f"{self.gateway_id}-produce",
                    )
                    if self.fleet_link:
                        applier = ConfigApplier(state, self.target, ident.gateway_id)
                        self.agent = FleetAgent(
                            applier,
                            url.hostname or "127.0.0.1",
                            url.port or 1883,
                            username,
                            password,
                        )
                        tg.create_task(self.agent.run(), name=f"{self.gateway_id}-fleet")
                    self.started.set()
        finally:
            state.close()

    async def _produce(self, buffer: AckTimer) -> None:
        """Each sensor reads every `interval_s`, at its own phase; the buffer commits in
        groups (every COMMIT_INTERVAL_S at most), as the daemon's writer does."""
        w = self.workload
        interval = w.interval_s
        now = time.monotonic()
        due = [now + self.random.uniform(0, interval) for _ in range(w.sensors)]
        values = [self.random.uniform(5.0, 25.0) for _ in range(w.sensors)]
        prefix = self.gateway_id
        while True:
            nxt = min(due)
            await asyncio.sleep(max(COMMIT_INTERVAL_S, nxt - time.monotonic()))
            if not self.producing:  # silent: its readings are missed, not piled up
                now = time.monotonic()
                due = [t + interval * (1 + (now - t) // interval) if t <= now else t for t in due]
                continue
            now = time.monotonic()
            ts = time.time_ns() // 1_000_000
            appended = False
            for i, t in enumerate(due):
                if t <= now:
                    values[i] += self.random.uniform(-0.1, 0.1)
                    buffer.append(
                        Reading(f"{prefix}-s{i:03d}", "temperature", "Cel", round(values[i], 2), ts)
                    )
                    self.produced += 1
                    due[i] = t + interval
                    appended = True
            if appended:
                buffer.commit()


async def run_all(gateways: list[SimGateway]) -> None:
    """Run every gateway until cancelled (one failing is logged, the others go on)."""

    async def guarded(g: SimGateway) -> None:
        try:
            await g.run()
        except Exception:
            log.exception("gateway %s stopped", g.gateway_id or g.data_dir)

    async with asyncio.TaskGroup() as tg:
        for g in gateways:
            tg.create_task(guarded(g), name=f"gateway-{g.data_dir.name}")


__all__ = [
    "COMMIT_INTERVAL_S",
    "LAG_BUCKETS",
    "AckTimer",
    "Producer",
    "SimGateway",
    "SimTarget",
    "Workload",
    "run_all",
]
