"""AckedRanges: the set of sequence numbers the hub has committed, as merged ranges."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable


class AckedRanges:
    """Disjoint, sorted, merged inclusive ranges (adjacent ones merge: [1, 5] + [6, 9] = [1, 9])."""

    __slots__ = ("_ends", "_starts")

    def __init__(self, ranges: Iterable[tuple[int, int]] = ()) -> None:
        self._starts: list[int] = []
        self._ends: list[int] = []
        for a, b in ranges:
            self.add(a, b)

    def add(self, a: int, b: int) -> None:
        if a > b:
            return
        starts, ends = self._starts, self._ends
        # every range that overlaps or touches [a, b]
        lo = bisect_left(ends, a - 1)
        hi = bisect_right(starts, b + 1)
        if lo < hi:
            a = min(a, starts[lo])
            b = max(b, ends[hi - 1])
        starts[lo:hi] = [a]
        ends[lo:hi] = [b]

    def covers(self, a: int, b: int) -> bool:
        """Is every seq of [a, b] acknowledged?"""
        i = bisect_right(self._starts, a) - 1
        return i >= 0 and self._ends[i] >= b

    def contains(self, seq: int) -> bool:
        return self.covers(seq, seq)

    def count_in(self, a: int, b: int) -> int:
        """How many seqs of [a, b] are acknowledged."""
        starts, ends = self._starts, self._ends
        i = max(0, bisect_right(starts, a) - 1)
        total = 0
        while i < len(starts) and starts[i] <= b:
            lo = max(a, starts[i])
            hi = min(b, ends[i])
            if hi >= lo:
                total += hi - lo + 1
            i += 1
        return total

    def prune_below(self, floor: int) -> None:
        """Forget everything below `floor` (those seqs are gone from the buffer)."""
        starts, ends = self._starts, self._ends
        k = bisect_left(ends, floor)
        del starts[:k]
        del ends[:k]
        if starts and starts[0] < floor:
            starts[0] = floor

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def highest(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __len__(self) -> int:
        return len(self._starts)


__all__ = ["AckedRanges"]
