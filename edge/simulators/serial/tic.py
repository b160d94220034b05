"""A Linky meter's TIC output, historique (1200 7E1) or standard (9600 7E1).

The meter talks on its own, as a real one does: one frame right after the other, 16.7 to
33.4 ms apart (Enedis-NOI-CPT_02E), at the line's real speed when `pace` is 1 (a historique
three-phase frame of ~250 bytes takes 2.1 s at 1200 7E1); `interval` sets a slower, fixed
rhythm instead (tests at a faster pace). Each group is built with
`protocols.tic.build_group`. `phases=3` is a three-phase meter on the HC/HP option (the
full-length historique frame: IINST1-3, IMAX1-3, PMAX, PPOT...). The apparent power wanders
like a household's, the energy index follows it.
"""

from __future__ import annotations

import time
from typing import ClassVar, Unpack

from edge.simulators.serial._base import SimOptions, StreamSimulator
from edge.simulators.serial._link import LineFormat
from protocols import tic


class LinkySimulator(StreamSimulator):
    """A single-phase Linky on the BASE tariff, `mode` historique or standard."""

    kind: ClassVar[str] = "tic"
    default_interval: ClassVar[float] = 0.0  # back to back, with the real gap between frames
    GAP_S: ClassVar[tuple[float, float]] = (0.0167, 0.0334)  # between two frames

    def __init__(
        self,
        name: str = "ttyLINKY0",
        *,
        mode: str = tic.HISTORIQUE,
        adco: str = "041876543210",
        index_wh: int = 12_345_678,
        interval: float | None = None,
        phases: int = 1,
        **options: Unpack[SimOptions],
    ) -> None:
        if mode not in tic.MODES:
            raise ValueError(f"TIC mode historique or standard, not {mode!r}")
        if phases not in (1, 3) or (phases == 3 and mode != tic.HISTORIQUE):
            raise ValueError(f"a meter of 1 or 3 phases (3: historique), not {phases!r}")
        options.setdefault("line", LineFormat(tic.BAUDRATE[mode], 7, "E", 1))
        super().__init__(name, interval=interval, **options)
        self.mode = mode
        self.phases = phases
        self.adco = adco
        self.index_wh = float(index_wh)
        self.power_va = 850.0
        self._last = time.monotonic()

    def _evolve(self) -> None:
        now = time.monotonic()
        dt = now - self._last
        self._last = now
        self.power_va += self.rng.gauss(0, 60)
        if self.rng.random() < 0.03:  # an oven, a kettle: steps up and down
            self.power_va += self.rng.choice((-1500.0, 1500.0))
        self.power_va = min(max(self.power_va, 120.0), 8500.0)
        self.index_wh += self.power_va * dt / 3600.0

    def frame(self, bad_checksum: bool) -> bytes:
        self._evolve()
        groups = self._historique() if self.mode == tic.HISTORIQUE else self._standard()
        if bad_checksum:
            groups[3] = _corrupt(groups[3])
        return tic.build_frame(groups)

    def gap(self) -> float:
        """Seconds of silence after a frame (scaled by the pace like the line's speed)."""
        if self.interval > 0:
            return 0.0
        low, high = self.GAP_S
        gap = self.rng.uniform(low, high)
        return gap / self.pace if self.pace > 0 else 0.0

    def _historique(self) -> list[bytes]:
        h = tic.HISTORIQUE
        papp = int(self.power_va)
        if self.phases == 3:
            return self._historique_three_phase()
        return [
            tic.build_group("ADCO", self.adco, h),
            tic.build_group("OPTARIF", "BASE", h),
            tic.build_group("ISOUSC", "30", h),
            tic.build_group("BASE", f"{int(self.index_wh):09d}", h),
            tic.build_group("PTEC", "TH..", h),
            tic.build_group("IINST", f"{round(papp / 230):03d}", h),
            tic.build_group("IMAX", "090", h),
            tic.build_group("PAPP", f"{papp:05d}", h),
            tic.build_group("HHPHC", "A", h),
            tic.build_group("MOTDETAT", "000000", h),
        ]

    def _historique_three_phase(self) -> list[bytes]:
        h = tic.HISTORIQUE
        papp = int(self.power_va)
        amps = [round(papp / 3 / 230 + self.rng.random()) for _ in range(3)]
        index = int(self.index_wh)
        return [
            tic.build_group("ADCO", self.adco, h),
            tic.build_group("OPTARIF", "HC..", h),
            tic.build_group("ISOUSC", "30", h),
            tic.build_group("HCHC", f"{index // 3:09d}", h),
            tic.build_group("HCHP", f"{index - index // 3:09d}", h),
            tic.build_group("PTEC", "HP..", h),
            *(tic.build_group(f"IINST{n}", f"{a:03d}", h) for n, a in enumerate(amps, 1)),
            *(tic.build_group(f"IMAX{n}", "060", h) for n in (1, 2, 3)),
            tic.build_group("PMAX", "09870", h),
            tic.build_group("PAPP", f"{papp:05d}", h),
            tic.build_group("HHPHC", "A", h),
            tic.build_group("MOTDETAT", "000000", h),
            tic.build_group("PPOT", "00", h),
        ]

    def _standard(self) -> list[bytes]:
        s = tic.STANDARD
        now = time.localtime()
        season = "E" if now.tm_isdst > 0 else "H"
        stamp = season + time.strftime("%y%m%d%H%M%S", now)
        sinsts = int(self.power_va)
        index = f"{int(self.index_wh):09d}"
        groups = [
            tic.build_group("ADSC", self.adco, s),
            tic.build_group("VTIC", "02", s),
            tic.build_group("DATE", "", s, stamp),
            tic.build_group("EAST", index, s),
            tic.build_group("NGTF", "      BASE      ", s),
            tic.build_group("LTARF", "      BASE      ", s),
            tic.build_group("EASF01", index, s),
        ]
        groups += [tic.build_group(f"EASF{n:02d}", "0" * 9, s) for n in range(2, 11)]
        groups += [
            tic.build_group("EASD01", index, s),
            tic.build_group("EASD02", "0" * 9, s),
            tic.build_group("EASD03", "0" * 9, s),
            tic.build_group("EASD04", "0" * 9, s),
            tic.build_group("IRMS1", f"{round(sinsts / 231):03d}", s),
            tic.build_group("URMS1", f"{round(231 + self.rng.gauss(0, 1.5)):03d}", s),
            tic.build_group("PREF", "09", s),
            tic.build_group("PCOUP", "09", s),
            tic.build_group("SINSTS", f"{sinsts:05d}", s),
            tic.build_group("SMAXSN", f"{max(sinsts, 4200):05d}", s, stamp),
            tic.build_group("CCASN", f"{sinsts // 2:05d}", s, stamp),
            tic.build_group("UMOY1", "231", s, stamp),
            tic.build_group("STGE", "003A0001", s),
            tic.build_group("MSG1", "PAS DE          MESSAGE         ", s),
            tic.build_group("PRM", "01234567890123", s),
            tic.build_group("RELAIS", "000", s),
            tic.build_group("NTARF", "01", s),
            tic.build_group("NJOURF", "00", s),
            tic.build_group("NJOURF+1", "00", s),
        ]
        return groups

    def port_config(self, sensor_prefix: str | None = None) -> dict[str, object]:
        port = self._port("tic", [{"sensor": sensor_prefix or "linky", "interval": 0}])
        port["mode"] = self.mode
        return port


def _corrupt(group: bytes) -> bytes:
    """The same group with a wrong checksum character (still in 0x20..0x5F)."""
    checksum = group[-2]
    wrong = 0x20 + ((checksum - 0x20 + 1) & 0x3F)
    return group[:-2] + bytes((wrong,)) + group[-1:]


__all__ = ["LinkySimulator"]
