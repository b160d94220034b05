"""Power cuts at thousands of points (the in-memory crash simulator, edge/tests/support/memfs.py):
after recovery every committed reading that the hub had not acknowledged is there, exact;
nothing else is there that was not appended; no sequence number is ever handed out twice;
a power cut is never mistaken for corruption.

ESTRAN_CRASH_TRIALS sets the number of crash points (default 1000 trials of two power cuts each, about 20 s).
"""

from __future__ import annotations

import os
import random

import pytest

from edge.buffer import BufferConfig, SegmentLog, verify_buffer
from edge.buffer._acks import AckedRanges
from edge.tests.support.buffer import FakeClock, exact, reading
from edge.tests.support.memfs import Crash, MemoryFileLayer
from protocols.reading import Reading

TRIALS = int(os.environ.get("ESTRAN_CRASH_TRIALS", "1000"))


class Scenario:
    """A random life of a buffer: appends, commits, acks, reads, restarts, time passing."""

    def __init__(self, seed: int) -> None:
        rng = random.Random(seed)
        self.seed = seed
        self.config = BufferConfig(
            "/buf",
            quota_bytes=rng.choice([64 * 1024, 1 << 30]),
            policy="drop_oldest",
            commit_readings=rng.choice([1, 3, 17, 50]),
            commit_interval_s=0.1,
            segment_bytes=4096,
            seq_reserve=rng.choice([1, 5, 1000]),
            preallocate=rng.random() < 0.5,  # commits written in place over zeros
        )
        self.rng = rng
        self.handed: dict[int, Reading] = {}  # the reading each seq goes (or may go) to
        self.returned = 0  # the highest seq an append returned
        self.durable: set[int] = set()  # seqs whose commit returned
        self.acked = AckedRanges()  # ranges an ack was attempted for
        self.counter = 0

    def _note_durable(self, log: SegmentLog) -> None:
        d = log.durable_seq
        self.durable.update(s for s in self.handed if s <= d)

    def run(self, layer: MemoryFileLayer, part: int = 0) -> None:
        steps = random.Random(self.seed * 10 + part)
        self.steps = [steps.random() for _ in range(steps.randint(10, 60))]
        self.sizes = [steps.randint(1, 40) for _ in self.steps]
        clock = FakeClock()
        log = SegmentLog.open(
            self.config, layer=layer, clock=clock, wall_clock=lambda: 1_764_600_000.0
        )
        rng = random.Random(self.seed * 10 + part + 1)
        try:
            for p, size in zip(self.steps, self.sizes, strict=True):
                if p < 0.45:
                    batch = []
                    for _ in range(size):
                        self.counter += 1
                        batch.append(reading(self.counter, alarm=rng.random() < 0.03))
                    if rng.random() < 0.5:
                        for r in batch:
                            self.handed[log.next_seq] = r
                            seq = log.append(r)
                            assert self.handed[seq] is r
                            self.returned = seq
                            self._note_durable(log)
                    else:
                        first = log.next_seq
                        for k, r in enumerate(batch):
                            self.handed[first + k] = r
                        last = log.append_many(batch)
                        assert last == first + len(batch) - 1
                        self.returned = last
                        self._note_durable(log)
                elif p < 0.6:
                    log.commit()
                    self._note_durable(log)
                elif p < 0.72:
                    if self.durable:
                        hi = max(self.durable)
                        a = rng.randint(1, hi)
                        b = rng.randint(a, min(hi, a + 60))
                        self.acked.add(a, b)
                        log.ack([(a, b)])
                elif p < 0.82:
                    for block in log.read_blocks(rng.choice([0, log.durable_seq // 2]), 100):
                        assert block.first_seq in self.durable
                elif p < 0.9:
                    log.close()
                    self._note_durable(log)
                    log = SegmentLog.open(
                        self.config, layer=layer, clock=clock, wall_clock=lambda: 1_764_600_000.0
                    )
                else:
                    clock.advance(0.15)
            log.close()
            self._note_durable(log)
        finally:
            pass

    def check(self, layer: MemoryFileLayer, append: bool = True) -> None:
        log = SegmentLog.open(
            self.config, layer=layer, clock=FakeClock(), wall_clock=lambda: 1_764_600_000.0
        )
        assert log.recovery.problems == [], log.recovery.problems
        assert log.recovery.lost == 0
        present = dict(log.iter_readings(include_acked=True))
        for seq, r in present.items():
            assert seq in self.handed, f"seq {seq} was never handed out"
            assert exact(self.handed[seq], r), (seq, self.handed[seq], r)
        dropped_upto = log._state.dropped_upto
        missing = [
            s
            for s in sorted(self.durable)
            if s not in present and not self.acked.contains(s) and s > dropped_upto
        ]
        assert not missing, f"committed readings lost: {missing[:10]} ... ({len(missing)})"
        # what was handed out but neither committed nor found is gone for good: later
        # commits (of higher numbers) must not make it count as committed
        for s in [s for s in self.handed if s not in present and s not in self.durable]:
            del self.handed[s]
        self.durable.update(
            present
        )  # found after the cut: durable now, whether or not its commit returned
        top = max([self.returned, *present])
        assert log.next_seq > top
        if append:
            seq = log.append(reading(0))
            assert seq > top
            log.close()
        else:
            log._release()  # as if the power went again at once: no seal, no final mark


def count_ops(seed: int, part: int = 0) -> int:
    layer = MemoryFileLayer()
    Scenario(seed).run(layer, part)
    return layer.ops


@pytest.mark.slow
def test_power_cuts_at_thousands_of_points() -> None:
    scenarios = 50
    totals = [[count_ops(seed, part) for part in range(2)] for seed in range(scenarios)]
    crashed = 0
    rng = random.Random(2025)
    for trial in range(TRIALS):
        seed = trial % scenarios
        scenario = Scenario(seed)
        layer = MemoryFileLayer()
        try:
            # a power cut, recovery, more life on the recovered disk, a second power cut
            for part in range(2):
                layer.rng = random.Random(trial * 2 + part)
                layer.crash_at = rng.randint(1, totals[seed][part])
                try:
                    scenario.run(layer, part)
                except Crash:
                    crashed += 1
                layer = layer.after_crash(random.Random(trial * 2 + part))
                scenario.check(layer, append=False)
            report = verify_buffer(scenario.config, layer)
            assert report.ok, report.problems
            scenario.check(layer)
        except AssertionError as e:
            raise AssertionError(f"trial {trial} (scenario {seed}, part {part}): {e}") from e
    assert crashed > 1.8 * TRIALS  # nearly every run was cut short


def test_a_life_without_power_cuts_keeps_everything() -> None:
    for seed in range(20):
        layer = MemoryFileLayer()
        scenario = Scenario(seed)
        scenario.run(layer)
        assert scenario.durable == set(scenario.handed)  # close() commits
        assert scenario.returned == max(scenario.handed, default=0)
        scenario.check(layer.clone())
