"""The rollout engine: walks a rollout's waves batch by batch through an executor
(fleet._executor), records every gateway's result, and stops by itself when failures pass the
rollout's threshold (docs/updates.md, "Rollouts").

- Batches: at most `batch` gateways at a time, in wave order; pause and cancel are looked at
  before each batch and while one runs (the executor starts no further gateway; those under
  way finish: a gateway is never left half-updated).
- Unreachable gateways are deferred, not failed: the wave's deferred gateways are tried again
  `retries` times, `retry_s` apart, before the next wave; still unreachable, they are left
  `unreachable` (neither failed nor updated) and the rollout goes on.
- Threshold: once more gateways failed (rolled back or failed) than the rollout tolerates,
  it stops: the gateways not started are spared (`cancelled`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from fleet._errors import FleetError
from fleet._executor import (
    Executor,
    GatewayResult,
    Mode,
    Outcome,
    ReleaseRef,
    RunAborted,
    StepEvent,
    Target,
)

if TYPE_CHECKING:
    from fleet._fleet import Fleet
    from fleet._rollouts import Rollout

log = logging.getLogger("estran.fleet.rollout")

POLL_S = 0.5


def runner_name(kind: str) -> str:
    return f"{kind}@{socket.gethostname()}:{os.getpid()}"


class RolloutRunner:
    """Runs rollouts of `fleet` with `executors` (by mode). `hub_url`: where gateways reach
    the hub (pull mode's job names the bundle's URLs under it)."""

    def __init__(
        self,
        fleet: Fleet,
        executors: Mapping[Mode, Executor],
        *,
        hub_url: str = "",
        name: str | None = None,
        poll_s: float = POLL_S,
        on_event: Callable[[StepEvent], None] | None = None,
        shutdown: threading.Event | None = None,
    ) -> None:
        self.fleet = fleet
        self.executors = dict(executors)
        self.hub_url = hub_url
        self.name = name or runner_name("runner")
        self.poll_s = poll_s
        self.on_event = on_event
        # the runner's owner stops: leave the rollout running (an executor given the same event
        # ends the batch under way: default_executors(fleet, abort=...))
        self.shutdown = shutdown or threading.Event()

    # -- entry points -------------------------------------------------------------------------

    def run_next(self) -> Rollout | None:
        """Claim a rollout nobody runs and run it to its end (the hub's worker)."""
        rid = self.fleet.claim_rollout(self.name)
        return None if rid is None else self.run(rid)

    def run(self, rid: int) -> Rollout:
        """Run rollout `rid` (claimed by this runner) until it ends, is cancelled, or the
        runner shuts down (then it stays running for the next runner)."""
        if self.fleet.claim_rollout(self.name, rid) != rid:
            raise FleetError(f"rollout {rid} is not running, or another runner holds it")
        r = self.fleet.rollout(rid)
        executor = self.executors.get(r.mode)
        if executor is None:
            return self.fleet.finish_rollout(
                rid, "failed", f"{r.mode} mode: no executor on this hub (not built yet)"
            )
        try:
            release = self.fleet.release_ref(r.release, self.hub_url)
        except FleetError as e:
            return self.fleet.finish_rollout(rid, "failed", str(e))
        try:
            done = self._walk(r, executor, release)
            if self.shutdown.is_set() and done.state in ("running", "paused"):
                # left for the next runner: it need not wait for the lease to expire
                self.fleet.release_rollout(rid, self.name)
            return done
        except FleetError as e:
            log.error("rollout %s failed: %s", rid, e)
            return self.fleet.finish_rollout(rid, "failed", str(e))

    # -- the walk -----------------------------------------------------------------------------

    def _state(self, rid: int) -> str:
        return self.fleet.renew_rollout(rid, self.name)

    def _wait_running(self, rid: int) -> str:
        """Wait while paused; the state when it is not paused any more."""
        while True:
            state = self._state(rid)
            if state != "paused" or self.shutdown.is_set():
                return state
            self.shutdown.wait(self.poll_s)

    def _walk(self, r: Rollout, executor: Executor, release: ReleaseRef) -> Rollout:
        rid = r.id
        limit = self.fleet.rollout_limit(r)
        for wave, (wave_name, _) in enumerate(r.waves):
            retried = 0
            while True:
                state = self._wait_running(rid)
                if self.shutdown.is_set():
                    return self.fleet.rollout(rid)
                if state != "running":
                    return self._ended(rid, state)
                current = [g for g in self.fleet.rollout(rid).gateways if g.wave == wave]
                pending = [g.gateway for g in current if g.state == "pending"]
                deferred = [g.gateway for g in current if g.state == "deferred"]
                if pending:
                    self._batch(rid, executor, release, pending[: r.batch])
                    done = self.fleet.rollout(rid)
                    if done.failures > limit:
                        return self.fleet.finish_rollout(
                            rid,
                            "stopped",
                            f"{done.failures} of {done.finished} gateways failed"
                            f" (at most {limit} tolerated): stopped in wave {wave_name}",
                        )
                    continue
                if not deferred:
                    break
                if retried >= r.retries:
                    self.fleet.rollout_give_up(rid, deferred, retried)
                    break
                retried += 1
                log.info(
                    "rollout %s: %d gateways of wave %s unreachable, retry %d in %.0f s",
                    rid, len(deferred), wave_name, retried, r.retry_s,
                )  # fmt: skip
                deadline = time.monotonic() + r.retry_s
                while time.monotonic() < deadline and not self.shutdown.is_set():
                    if self._state(rid) not in ("running", "paused"):
                        break
                    self.shutdown.wait(min(self.poll_s, max(0.0, deadline - time.monotonic())))
                self.fleet.rollout_retry(rid, deferred)
        final = self.fleet.rollout(rid)
        if final.state != "running":
            return self._ended(rid, final.state)
        c = final.counts()
        parts = [f"{c[k]} {k.replace('_', ' ')}" for k in c if c[k]]
        return self.fleet.finish_rollout(rid, "done", ", ".join(parts))

    def _ended(self, rid: int, state: str) -> Rollout:
        r = self.fleet.rollout(rid)
        if state == "cancelled":
            return self.fleet.finish_rollout(rid, "cancelled", r.reason or "cancelled")
        return r

    def _batch(self, rid: int, executor: Executor, release: ReleaseRef, batch: list[str]) -> None:
        targets = []
        for gw in batch:
            host = self.fleet.host(gw)
            targets.append(Target(gw, str(host.get("estran_hub_group") or ""), host))
        self.fleet.rollout_started(rid, batch)
        stop = threading.Event()
        watching = threading.Event()
        steps: dict[str, str] = {}

        def on_event(event: StepEvent) -> None:
            if event.state == "started" and steps.get(event.gateway_id) != event.step:
                steps[event.gateway_id] = event.step
                with contextlib.suppress(FleetError):
                    self.fleet.rollout_step(rid, event.gateway_id, event.step)
            if self.on_event is not None:
                self.on_event(event)

        def watch() -> None:  # pause, cancel, lease
            while not watching.wait(self.poll_s):
                try:
                    if self._state(rid) != "running" or self.shutdown.is_set():
                        stop.set()
                except FleetError:
                    stop.set()

        watcher = threading.Thread(target=watch, name=f"rollout-{rid}-watch", daemon=True)
        watcher.start()
        started_ms = int(time.time() * 1000)
        try:
            results = executor.run(release, targets, on_event, stop)
        except RunAborted as e:
            # the hub stops: nothing is recorded, the gateways stay `running`; the next
            # runner (the hub's worker at its next start) runs them again
            log.warning("rollout %s: %s; %s left to the next runner", rid, e, ", ".join(batch))
            return
        except FleetError as e:
            results = [
                GatewayResult(gw, Outcome.FAILED, f"the executor failed: {e}", started_ms,
                              int(time.time() * 1000))
                for gw in batch
            ]  # fmt: skip
        finally:
            watching.set()
            watcher.join()
        by_id = {res.gateway_id: res for res in results}
        for gw in batch:
            res = by_id.get(gw) or GatewayResult(
                gw, Outcome.FAILED, "the executor gave no result", started_ms,
                int(time.time() * 1000),
            )  # fmt: skip
            state = self.fleet.rollout_result(rid, res, release=release.version)
            log.info("rollout %s: %s %s %s", rid, gw, state, res.reason[:200])


def default_executors(fleet: Fleet, abort: threading.Event | None = None) -> dict[Mode, Executor]:
    """Push (ansible-runner, runs kept in `<data>/fleet/runs/`) and, when this version has
    it, pull (fleet._pull: a signed job on each gateway's cmd topic). `abort` set: the push
    run under way is ended (the hub stops)."""
    from fleet._push import PushExecutor

    found: dict[Mode, Executor] = {"push": PushExecutor(fleet.directory / "runs", abort=abort)}
    try:
        import importlib

        pull = importlib.import_module("fleet._pull")
    except ModuleNotFoundError:
        return found
    found["pull"] = pull.PullExecutor(fleet)
    return found


__all__ = ["POLL_S", "RolloutRunner", "default_executors", "runner_name"]
