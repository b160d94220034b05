"""Push mode: the hub runs the release's own `update.yml` with ansible-runner, over SSH (or the
local connection a gateway's host variables name), one batch of gateways per run, in
parallel (`forks` = the batch). Each task's start and end is streamed as a StepEvent; each
gateway's outcome comes from the run's result for that host:

- unreachable (SSH refused, timed out) -> UNREACHABLE: the engine defers and retries it;
- failed with "rolled back to N: ..." (update.yml's own rescue) -> ROLLED_BACK;
- failed otherwise -> FAILED (the checksum refused, no N to go back to, ...);
- otherwise UPDATED when something changed, UNCHANGED when it already ran the release.

The play installs the wheel and wheelhouse from the hub's copy of the bundle (copied to the
gateway, checksum verified there before anything is installed).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from fleet._errors import FleetError
from fleet._executor import (
    GatewayResult,
    Mode,
    Outcome,
    ReleaseRef,
    RunAborted,
    StepEvent,
    StepState,
    Target,
    tail,
)
from fleet._releases import WHEELHOUSE

_ROLLED_BACK = re.compile(r"rolled back to (\S+?):")
RUN_TIMEOUT_S = 3600


def _now_ms() -> int:
    return int(time.time() * 1000)


class PushExecutor:
    """ansible-runner from this machine. `extravars` are added to every run (the hub's
    defaults for its gateways: estran_python, estran_gate_timeout, ...; host variables in
    the registry win over them only where Ansible's precedence says so: extra vars win, so
    keep per-gateway settings out of here)."""

    mode: Mode = "push"

    def __init__(
        self,
        work_dir: Path,
        *,
        extravars: Mapping[str, object] | None = None,
        envvars: Mapping[str, str] | None = None,
        timeout_s: float = RUN_TIMEOUT_S,
        keep_runs: int = 20,
        abort: threading.Event | None = None,
    ) -> None:
        """`abort` set (the hub stops): the run under way is ended at once (ansible-runner
        kills ansible-playbook) and RunAborted raised; its gateways are left to the next
        runner, which runs them again (update.yml gates again a gateway switched but not
        gated: the marker gate-pending.json)."""
        self.abort = abort
        self.work_dir = work_dir
        self.extravars = dict(extravars or {})
        self.envvars = dict(envvars or {})
        self.timeout_s = timeout_s
        self.keep_runs = keep_runs

    def _extravars(self, release: ReleaseRef) -> dict[str, object]:
        assert release.directory is not None
        out: dict[str, object] = {
            **self.extravars,
            "estran_hosts": "rollout",
            "estran_version": release.version,
            "estran_wheel_src": str(release.directory / release.wheel),
            "estran_wheel_sha256": release.sha256(release.wheel),
        }
        if release.has(WHEELHOUSE):
            out["estran_wheelhouse_src"] = str(release.directory / WHEELHOUSE)
        return out

    def _env(self, playbooks: Path, private: Path) -> dict[str, str]:
        bindir = str(Path(sys.executable).parent)
        return {
            "PATH": bindir + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"),
            "ANSIBLE_CONFIG": str(playbooks / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.work_dir / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(private / "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=2s",
            **self.envvars,
        }

    def _prune(self) -> None:
        runs = sorted(p for p in self.work_dir.glob("run-*") if p.is_dir())
        for old in runs[: max(0, len(runs) - self.keep_runs)]:
            shutil.rmtree(old, ignore_errors=True)

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]:
        try:
            import ansible_runner
        except ImportError as e:
            raise FleetError("push mode needs ansible-runner: pip install 'estran[hub]'") from e
        if release.directory is None:
            raise FleetError(f"release {release.version}: no bundle on this machine")
        now = _now_ms()
        if stop.is_set() or not targets:
            return [
                GatewayResult(t.gateway_id, Outcome.UNREACHABLE, "not started: paused", now, now)
                for t in targets
            ]
        playbooks = release.directory / "playbooks"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._prune()
        private = Path(tempfile.mkdtemp(prefix=f"run-{now}-", dir=self.work_dir))
        (private / "tmp").mkdir()
        inventory = {
            "rollout": {
                "hosts": {
                    t.gateway_id: {
                        k: v
                        for k, v in t.hostvars.items()
                        if v is not None or not k.startswith("estran_")
                    }
                    for t in targets
                }
            }
        }
        logs: dict[str, list[str]] = {t.gateway_id: [] for t in targets}
        failures: dict[str, str] = {}
        unreachable: dict[str, str] = {}
        changed: dict[str, int] = {}
        started: dict[str, int] = {}
        finished: dict[str, int] = {}
        failed_at: dict[str, int] = {}

        def handler(event: dict[str, Any]) -> bool:
            data = event.get("event_data") or {}
            host = data.get("host")
            kind = str(event.get("event", ""))
            text = str(event.get("stdout") or "")
            if host not in logs:
                return True
            task = str(data.get("task") or "")
            if text:
                logs[host].append(text)
            state: StepState | None = None
            detail = ""
            res = data.get("res") or {}
            if kind == "runner_on_start":
                state = "started"
                started.setdefault(host, _now_ms())
            elif kind == "runner_on_ok":
                state = "changed" if res.get("changed") else "ok"
                changed[host] = changed.get(host, 0) + (1 if res.get("changed") else 0)
            elif kind == "runner_on_failed":
                state = "failed"
                detail = str(res.get("msg") or "")[:2000]
                if not data.get("ignore_errors"):
                    failures[host] = detail
                    failed_at.setdefault(host, _now_ms())
            elif kind == "runner_on_unreachable":
                state = "unreachable"
                detail = str(res.get("msg") or "unreachable")[:2000]
                unreachable[host] = detail
            elif kind == "runner_on_skipped":
                state = "skipped"
            if state is not None:
                finished[host] = _now_ms()
                on_event(StepEvent(host, _now_ms(), task, state, detail))
            return True

        try:
            runner = ansible_runner.run(
                private_data_dir=str(private),
                project_dir=str(playbooks),
                playbook=str(playbooks / "update.yml"),
                inventory=inventory,
                extravars=self._extravars(release),
                envvars=self._env(playbooks, private),
                forks=len(targets),
                event_handler=handler,
                quiet=True,
                timeout=int(self.timeout_s),
                suppress_env_files=True,
                cancel_callback=lambda: self.abort is not None and self.abort.is_set(),
            )
        except Exception as e:  # ansible-runner raises plain exceptions for setup problems
            raise FleetError(f"ansible-runner could not run update.yml: {e}") from e
        if self.abort is not None and self.abort.is_set():
            raise RunAborted(f"update.yml stopped ({runner.status}): the hub stops")
        stats = runner.stats or {}
        dark = stats.get("dark") or {}
        failed = stats.get("failures") or {}
        rc = runner.rc
        results = []
        end = _now_ms()
        for t in targets:
            gw = t.gateway_id
            begun = started.get(gw, now)
            done = finished.get(gw, end)
            log = tail("".join(line + "\n" for line in logs[gw]))
            if gw in dark or gw in unreachable:
                reason = unreachable.get(gw, "unreachable")
                results.append(
                    GatewayResult(gw, Outcome.UNREACHABLE, reason, begun, done, None, log)
                )
            elif gw in failed or (not stats and gw in failures):
                reason = failures.get(gw, "failed")
                match = _ROLLED_BACK.search(reason)
                outcome = Outcome.ROLLED_BACK if match else Outcome.FAILED
                version = match.group(1) if match else None
                results.append(
                    GatewayResult(gw, outcome, reason, begun, done, version, log, failed_at.get(gw))
                )
            elif gw not in started:
                why = f"update.yml did not run on it (ansible-runner rc {rc}, {runner.status})"
                results.append(GatewayResult(gw, Outcome.FAILED, why, begun, done, None, log))
            else:
                outcome = Outcome.UPDATED if changed.get(gw) else Outcome.UNCHANGED
                results.append(GatewayResult(gw, outcome, "", begun, done, release.version, log))
        (private / "summary.json").write_text(
            json.dumps({r.gateway_id: r.outcome.value for r in results}, indent=1)
        )
        return results


__all__ = ["PushExecutor"]
