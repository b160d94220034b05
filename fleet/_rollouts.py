"""Rollouts: a release, the gateways it targets, their waves, and how far it went
(docs/updates.md, "Rollouts").

A rollout is made once (`create_rollout`): the target selector is resolved to gateway ids
and cut into waves — test rigs first, then a canary share of the others, then the rest — and
nothing about it changes afterwards but states. The engine (`fleet._rollout_run`) walks it;
this module is only its record: the rollout (`running`, `paused`, then `done`, `stopped` by
the failure threshold, `cancelled`, or `failed` when it could not run), each gateway's state,
step, timings and reason, and the audit log (`rollout.*`; `rollout.gateway` per gateway with
its log).

Whoever runs a rollout holds a lease on it (renewed while it runs); a rollout whose runner
died is taken over by the next one that asks (`claim_rollout`): the hub's worker, or
`estran fleet rollout resume --run`.
"""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from fleet._errors import Conflict, FleetError, NotFound
from fleet._executor import MODES, GatewayResult, Mode, Outcome
from fleet._inventory import Inventory

LEASE_S = 30.0
MAX_BATCH = 200
ACTIVE = ("running", "paused")
FINISHED = ("done", "stopped", "cancelled", "failed")
GATEWAY_STATES = (
    "pending",  # not started
    "running",
    "updated",
    "unchanged",
    "rolled_back",
    "failed",
    "deferred",  # unreachable so far: retried
    "unreachable",  # unreachable after every retry: not failed, not updated
    "cancelled",  # spared: the rollout was cancelled or stopped before it started
)
_SHARE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%?)\s*$")

_SQL = """
CREATE TABLE IF NOT EXISTS rollouts (
    id INTEGER PRIMARY KEY AUTOINCREMENT, release TEXT NOT NULL, mode TEXT NOT NULL,
    selector TEXT NOT NULL, state TEXT NOT NULL, max_failures REAL NOT NULL,
    batch INTEGER NOT NULL, retries INTEGER NOT NULL, retry_s REAL NOT NULL,
    created_ms INTEGER NOT NULL, created_by TEXT NOT NULL, started_ms INTEGER,
    finished_ms INTEGER, reason TEXT NOT NULL DEFAULT '', runner TEXT, lease_ms INTEGER);
CREATE TABLE IF NOT EXISTS rollout_gateways (
    rollout INTEGER NOT NULL, gateway TEXT NOT NULL, wave INTEGER NOT NULL,
    wave_name TEXT NOT NULL, position INTEGER NOT NULL, state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, started_ms INTEGER, finished_ms INTEGER,
    step TEXT NOT NULL DEFAULT '', reason TEXT NOT NULL DEFAULT '', version TEXT,
    PRIMARY KEY (rollout, gateway));
"""


def parse_share(text: str | float | int) -> tuple[float, bool]:
    """ "10%" -> (0.10, True); "3" -> (3, False): a share of the gateways, or a count."""
    if isinstance(text, (int, float)):
        return float(text), False
    match = _SHARE.match(text)
    if match is None:
        raise FleetError(f"{text!r}: a count (3) or a share (10%)")
    value = float(match.group(1))
    if match.group(2):
        if value > 100:
            raise FleetError(f"{text!r}: at most 100%")
        return value / 100, True
    return value, False


@dataclass(frozen=True, slots=True)
class RolloutGateway:
    gateway: str
    wave: int
    wave_name: str
    state: str
    attempts: int
    started_ms: int | None
    finished_ms: int | None
    step: str
    reason: str
    version: str | None

    @property
    def seconds(self) -> float | None:
        if self.started_ms is None or self.finished_ms is None:
            return None
        return (self.finished_ms - self.started_ms) / 1000

    def as_dict(self) -> dict[str, object]:
        return {
            "gateway": self.gateway,
            "wave": self.wave,
            "wave_name": self.wave_name,
            "state": self.state,
            "attempts": self.attempts,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "seconds": self.seconds,
            "step": self.step,
            "reason": self.reason,
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Rollout:
    id: int
    release: str
    mode: Mode
    selector: str
    state: str
    max_failures: float
    batch: int
    retries: int
    retry_s: float
    created_ms: int
    created_by: str
    started_ms: int | None
    finished_ms: int | None
    reason: str
    runner: str | None
    gateways: tuple[RolloutGateway, ...] = field(default=())

    @property
    def waves(self) -> list[tuple[str, list[RolloutGateway]]]:
        out: dict[int, tuple[str, list[RolloutGateway]]] = {}
        for g in self.gateways:
            out.setdefault(g.wave, (g.wave_name, []))[1].append(g)
        return [out[k] for k in sorted(out)]

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(GATEWAY_STATES, 0)
        for g in self.gateways:
            found[g.state] = found.get(g.state, 0) + 1
        return found

    @property
    def failures(self) -> int:
        c = self.counts()
        return c["rolled_back"] + c["failed"]

    @property
    def finished(self) -> int:
        c = self.counts()
        return c["updated"] + c["unchanged"] + self.failures

    def as_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "release": self.release,
            "mode": self.mode,
            "selector": self.selector,
            "state": self.state,
            "max_failures": self.max_failures,
            "batch": self.batch,
            "retries": self.retries,
            "retry_s": self.retry_s,
            "created_ms": self.created_ms,
            "created_by": self.created_by,
            "started_ms": self.started_ms,
            "finished_ms": self.finished_ms,
            "reason": self.reason,
            "runner": self.runner,
            "counts": self.counts(),
            "waves": [
                {"name": name, "gateways": [g.as_dict() for g in gws]} for name, gws in self.waves
            ],
        }


def _spread(gateway_ids: Sequence[str], salt: str) -> list[str]:
    """A fixed order that spreads canaries over groups and sites (not the first N by name)."""
    return sorted(gateway_ids, key=lambda g: hashlib.sha256(f"{salt}/{g}".encode()).digest())


class Rollouts(Inventory):
    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(data_dir, clock=clock)
        with self._lock:
            for stmt in _SQL.split(";"):
                if stmt.strip():
                    self._db.execute(stmt)

    # -- making one ---------------------------------------------------------------------------

    def plan_waves(
        self, targets: Sequence[str], rigs: Sequence[str], canary: str | float, salt: str
    ) -> list[tuple[str, list[str]]]:
        """[(wave name, gateway ids)]: the rigs among the targets, a canary share of the
        others (at least one when the share is not 0), the rest. Empty waves are left out."""
        rig_wave = [g for g in targets if g in set(rigs)]
        others = _spread([g for g in targets if g not in set(rig_wave)], salt)
        value, share = parse_share(canary)
        if value < 0:
            raise FleetError("the canary share is not negative")
        n = math.ceil(value * len(others)) if share else int(value)
        n = min(len(others), max(n, 1 if value > 0 and others else 0))
        waves = [("rigs", rig_wave), ("canary", sorted(others[:n])), ("rest", sorted(others[n:]))]
        return [(name, gws) for name, gws in waves if gws]

    def create_rollout(
        self,
        release: str,
        selector: str,
        actor: str,
        *,
        rigs: str | None = None,
        canary: str | float = "10%",
        mode: Mode = "push",
        max_failures: str | float = 0,
        batch: int = 10,
        retries: int = 3,
        retry_s: float = 60.0,
        runner: str | None = None,
    ) -> Rollout:
        """A rollout of `release` to the active gateways `selector` names (see
        gateways_matching), in waves. `max_failures`: the share (or count) of failed
        gateways beyond which it stops. `runner`: the caller runs it (holds the lease);
        None: the hub's worker takes it."""
        if mode not in MODES:
            raise FleetError(f"mode {mode!r}: one of {', '.join(MODES)}")
        self.release(release)
        if not 1 <= batch <= MAX_BATCH:
            raise FleetError(f"batch: 1 to {MAX_BATCH} gateways at a time")
        if not 0 <= retries <= 100 or not 0 <= retry_s <= 86400:
            raise FleetError("retries: 0 to 100, retry interval: 0 s to 1 day")
        limit, share = parse_share(max_failures)
        targets = self.gateways_matching(selector)
        if not targets:
            raise FleetError(f"{selector!r} names no active gateway")
        rig_ids = self.gateways_matching(rigs) if rigs else []
        stored_limit = limit if share else -limit  # a negative limit is a count
        now = self._now_ms()
        with self._tx() as db:
            under_way = db.execute(
                "SELECT r.id, g.gateway FROM rollouts r JOIN rollout_gateways g"
                " ON g.rollout = r.id WHERE r.state IN ('running', 'paused')"
                " AND g.state IN ('pending', 'running', 'deferred')"
            ).fetchall()
            busy = {gw: rid for rid, gw in under_way if gw in set(targets)}
            if busy:
                gw, rid = sorted(busy.items())[0]
                raise Conflict(
                    f"{gw} is in rollout {rid}, under way ({len(busy)} targets are):"
                    " cancel it or wait"
                )
            cur = db.execute(
                "INSERT INTO rollouts (release, mode, selector, state, max_failures, batch,"
                " retries, retry_s, created_ms, created_by, runner, lease_ms)"
                " VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    release,
                    mode,
                    selector,
                    stored_limit,
                    batch,
                    retries,
                    retry_s,
                    now,
                    actor,
                    runner,
                    now + int(LEASE_S * 1000) if runner else None,
                ),
            )
            rid = int(cur.lastrowid or 0)
            waves = self.plan_waves(targets, rig_ids, canary, salt=f"{rid}/{release}")
            position = 0
            for index, (name, gws) in enumerate(waves):
                for gw in gws:
                    db.execute(
                        "INSERT INTO rollout_gateways (rollout, gateway, wave, wave_name,"
                        " position, state) VALUES (?, ?, ?, ?, ?, 'pending')",
                        (rid, gw, index, name, position),
                    )
                    position += 1
            self._audit(
                db,
                actor,
                "rollout.start",
                f"rollout:{rid}",
                release=release,
                mode=mode,
                selector=selector,
                waves={name: len(gws) for name, gws in waves},
                max_failures=max_failures,
            )
            self._bump(db)
        return self.rollout(rid)

    # -- reading ------------------------------------------------------------------------------

    def _rollout_row(self, db: sqlite3.Connection, rid: int) -> Rollout:
        row = db.execute(
            "SELECT id, release, mode, selector, state, max_failures, batch, retries, retry_s,"
            " created_ms, created_by, started_ms, finished_ms, reason, runner"
            " FROM rollouts WHERE id = ?",
            (rid,),
        ).fetchone()
        if row is None:
            raise NotFound(f"no rollout {rid}")
        gws = db.execute(
            "SELECT gateway, wave, wave_name, state, attempts, started_ms, finished_ms, step,"
            " reason, version FROM rollout_gateways WHERE rollout = ? ORDER BY position",
            (rid,),
        ).fetchall()
        return Rollout(
            id=row[0],
            release=row[1],
            mode=row[2],
            selector=row[3],
            state=row[4],
            max_failures=row[5],
            batch=row[6],
            retries=row[7],
            retry_s=row[8],
            created_ms=row[9],
            created_by=row[10],
            started_ms=row[11],
            finished_ms=row[12],
            reason=row[13],
            runner=row[14],
            gateways=tuple(RolloutGateway(*g) for g in gws),
        )

    def rollout(self, rid: int) -> Rollout:
        with self._lock:
            return self._rollout_row(self._db, rid)

    def rollouts(self, limit: int = 20) -> list[Rollout]:
        with self._lock:
            ids = [
                r[0]
                for r in self._db.execute(
                    "SELECT id FROM rollouts ORDER BY id DESC LIMIT ?", (limit,)
                ).fetchall()
            ]
            return [self._rollout_row(self._db, i) for i in reversed(ids)]

    def rollout_limit(self, r: Rollout) -> int:
        """How many failed gateways the rollout tolerates (more: it stops)."""
        if r.max_failures < 0:
            return int(-r.max_failures)
        return math.floor(r.max_failures * len(r.gateways) + 1e-9)

    # -- control ------------------------------------------------------------------------------

    def _control(
        self, rid: int, actor: str, action: str, allowed: tuple[str, ...], to: str
    ) -> Rollout:
        with self._tx() as db:
            r = self._rollout_row(db, rid)
            if r.state not in allowed:
                raise Conflict(f"rollout {rid} is {r.state}: cannot {action}")
            db.execute("UPDATE rollouts SET state = ? WHERE id = ?", (to, rid))
            if to == "cancelled":
                db.execute(
                    "UPDATE rollout_gateways SET state = 'cancelled', reason = ?"
                    " WHERE rollout = ? AND state IN ('pending', 'deferred')",
                    (f"not started: cancelled by {actor}", rid),
                )
                db.execute(
                    "UPDATE rollouts SET finished_ms = ?, reason = ? WHERE id = ?"
                    " AND NOT EXISTS (SELECT 1 FROM rollout_gateways WHERE rollout = ?"
                    " AND state = 'running')",
                    (self._now_ms(), f"cancelled by {actor}", rid, rid),
                )
            self._audit(db, actor, f"rollout.{action}", f"rollout:{rid}")
            self._bump(db)
        return self.rollout(rid)

    def pause_rollout(self, rid: int, actor: str) -> Rollout:
        """No further gateway starts; those under way finish."""
        return self._control(rid, actor, "pause", ("running",), "paused")

    def resume_rollout(self, rid: int, actor: str) -> Rollout:
        return self._control(rid, actor, "resume", ("paused",), "running")

    def cancel_rollout(self, rid: int, actor: str) -> Rollout:
        """The gateways not yet started are spared (state `cancelled`); those under way
        finish."""
        return self._control(rid, actor, "cancel", ACTIVE, "cancelled")

    # -- for the runner -----------------------------------------------------------------------

    def claim_rollout(self, runner: str, rid: int | None = None) -> int | None:
        """Take a running rollout nobody holds (or whose runner stopped renewing): its id."""
        now = self._now_ms()
        with self._tx() as db:
            row = db.execute(
                "SELECT id FROM rollouts WHERE state IN ('running', 'paused')"
                " AND (lease_ms IS NULL OR lease_ms < ? OR runner = ?)"
                " AND (? IS NULL OR id = ?) ORDER BY id LIMIT 1",
                (now, runner, rid, rid),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE rollouts SET runner = ?, lease_ms = ?,"
                " started_ms = COALESCE(started_ms, ?) WHERE id = ?",
                (runner, now + int(LEASE_S * 1000), now, row[0]),
            )
            # a gateway left `running` by a runner that died is started again (idempotent)
            db.execute(
                "UPDATE rollout_gateways SET state = 'pending' WHERE rollout = ?"
                " AND state = 'running'",
                (row[0],),
            )
        return int(row[0])

    def release_rollout(self, rid: int, runner: str) -> None:
        """The runner stops (the hub shuts down) and leaves the rollout running: its lease
        ends now, so the next runner takes it over at once (not after LEASE_S)."""
        with self._tx() as db:
            db.execute(
                "UPDATE rollouts SET lease_ms = NULL WHERE id = ? AND runner = ?", (rid, runner)
            )

    def renew_rollout(self, rid: int, runner: str) -> str:
        """Renew the lease; the rollout's state (the runner stops when it is not running)."""
        with self._tx() as db:
            row = db.execute("SELECT state, runner FROM rollouts WHERE id = ?", (rid,)).fetchone()
            if row is None:
                raise NotFound(f"no rollout {rid}")
            if row[1] != runner:
                raise Conflict(f"rollout {rid} is run by {row[1]}, not {runner}")
            db.execute(
                "UPDATE rollouts SET lease_ms = ? WHERE id = ?",
                (self._now_ms() + int(LEASE_S * 1000), rid),
            )
        return str(row[0])

    def rollout_started(self, rid: int, gateways: Sequence[str]) -> None:
        now = self._now_ms()
        with self._tx() as db:
            for gw in gateways:
                db.execute(
                    "UPDATE rollout_gateways SET state = 'running', started_ms = ?, step = '',"
                    " attempts = attempts + 1 WHERE rollout = ? AND gateway = ?",
                    (now, rid, gw),
                )
            self._bump(db)

    def rollout_step(self, rid: int, gateway: str, step: str) -> None:
        with self._tx() as db:
            db.execute(
                "UPDATE rollout_gateways SET step = ? WHERE rollout = ? AND gateway = ?",
                (step[:200], rid, gateway),
            )

    def rollout_retry(self, rid: int, gateways: Sequence[str]) -> None:
        """Deferred gateways are tried again."""
        with self._tx() as db:
            for gw in gateways:
                db.execute(
                    "UPDATE rollout_gateways SET state = 'pending' WHERE rollout = ?"
                    " AND gateway = ? AND state = 'deferred'",
                    (rid, gw),
                )
            self._bump(db)

    def rollout_give_up(self, rid: int, gateways: Sequence[str], retries: int) -> None:
        """Deferred gateways still unreachable after every retry: neither failed nor updated."""
        with self._tx() as db:
            for gw in gateways:
                db.execute(
                    "UPDATE rollout_gateways SET state = 'unreachable' WHERE rollout = ?"
                    " AND gateway = ? AND state = 'deferred'",
                    (rid, gw),
                )
                self._audit(
                    db, f"rollout:{rid}", "rollout.unreachable", gw, rollout=rid, retries=retries
                )
            self._bump(db)

    def rollout_result(self, rid: int, result: GatewayResult, *, release: str) -> str:
        """Record one gateway's result; its new state in the rollout (`pending` again when
        it was not started, `deferred` when it was unreachable)."""
        if result.outcome is Outcome.UNREACHABLE:
            state = "pending" if result.reason.startswith("not started") else "deferred"
        else:
            state = result.outcome.value
        with self._tx() as db:
            db.execute(
                "UPDATE rollout_gateways SET state = ?, finished_ms = ?, reason = ?, version = ?,"
                " started_ms = COALESCE(?, started_ms), step = CASE WHEN ? THEN step ELSE '' END"
                " WHERE rollout = ? AND gateway = ?",
                (
                    state,
                    result.finished_ms,
                    result.reason[:2000],
                    result.version,
                    result.started_ms or None,
                    state in ("failed", "rolled_back"),
                    rid,
                    result.gateway_id,
                ),
            )
            if state != "pending":
                self._audit(
                    db,
                    f"rollout:{rid}",
                    "rollout.gateway",
                    result.gateway_id,
                    rollout=rid,
                    release=release,
                    outcome=result.outcome.value,
                    state=state,
                    reason=result.reason[:2000],
                    started_ms=result.started_ms,
                    finished_ms=result.finished_ms,
                    failed_ms=result.failed_ms,
                    seconds=round((result.finished_ms - result.started_ms) / 1000, 3),
                    version=result.version,
                    log=result.log,
                )
            self._bump(db)
        return state

    def finish_rollout(self, rid: int, state: str, reason: str) -> Rollout:
        if state not in FINISHED:
            raise FleetError(f"not a final state: {state}")
        with self._tx() as db:
            r = self._rollout_row(db, rid)
            if state in ("stopped", "cancelled", "failed"):
                db.execute(
                    "UPDATE rollout_gateways SET state = 'cancelled', reason = ?"
                    " WHERE rollout = ? AND state IN ('pending', 'deferred')",
                    (f"not started: rollout {state}", rid),
                )
            db.execute(
                "UPDATE rollouts SET state = ?, finished_ms = ?, reason = ?, lease_ms = NULL"
                " WHERE id = ?",
                (state, self._now_ms(), reason[:2000], rid),
            )
            self._audit(
                db,
                f"rollout:{rid}",
                f"rollout.{state}",
                f"rollout:{rid}",
                release=r.release,
                reason=reason[:2000],
                counts={k: v for k, v in r.counts().items() if v},
            )
            self._bump(db)
        return self.rollout(rid)

    def remove_release(self, version: str, actor: str) -> None:
        with self._lock:
            row = self._db.execute(
                "SELECT id FROM rollouts WHERE release = ? AND state IN ('running', 'paused')",
                (version,),
            ).fetchone()
        if row is not None:
            raise Conflict(f"rollout {row[0]} of {version} is under way")
        super().remove_release(version, actor)


__all__ = [
    "ACTIVE",
    "FINISHED",
    "GATEWAY_STATES",
    "Rollout",
    "RolloutGateway",
    "Rollouts",
    "parse_share",
]
