"""The systemd service mode (docs/updates.md, "Service modes"), with a real systemd: systemd
252 booted as PID 1 of a PID and mount namespace of its own on this machine, and inside it
the real provision.yml and update.yml (local connection, `estran_service_mode: systemd`,
`estran_root` empty: the paths of a real gateway) against a hub started here.

The namespace: a tmpfs on /run, /proc of its own, and overlays on /etc, /opt and /var (their
writes go to the test's directory: the user `estran` the playbook creates, the units, the
release, the buffer never reach this machine). systemd reads its units from a directory of
stub targets (`sysinit`, `basic`, `multi-user`, `shutdown`, `default`: this machine's own
boot units are not started) and from /etc/systemd/system, where the playbook puts the unit
the release ships, unchanged, with all its hardening (User=estran, ProtectSystem=strict,
PrivateTmp, ...). The test adds one drop-in: the daemon's output appended to
/run/edge-stdout.log (no journald runs in the namespace); no option relaxed.

- provision 1.0.0: `estran-edge.service` active and running, Type=notify (systemd saw
  READY=1: a notify unit is `active` only then), the watchdog armed and pinged (WATCHDOG=1),
  run as `estran`, not root; readings from its serial simulator reach the hub; pull mode's
  `estran-update@JOB.service` loads;
- update.yml to 1.0.1: the gate passes, `current` is 1.0.1, systemd runs a new main process;
- update.yml to a broken 1.0.2 (its uplink never connects): the gate fails, the play fails
  with "rolled back to 1.0.1", `current` is 1.0.1 again and the unit active on it.

Behind `-m long` (pytest -m long hil-tests/test_systemd_mode.py --rig hil-tests/sim.yaml).
Skipped when this machine cannot do it (not root, no unshare/nsenter, no systemd, no
overlayfs); a systemd that is there but does not boot fails under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import grp
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from estran.rig import until
from estran.rollout_lab import (
    ANSIBLE_PLAYBOOK,
    BREAK_UPLINK,
    PLAYBOOKS,
    REPO,
    LabHub,
    Release,
    Run,
    ansible_env,
    gateway_vars,
    nmea_port,
    releases,
    static_inventory,
)

pytestmark = pytest.mark.long

V1, V2, BROKEN = "1.0.0", "1.0.1", "1.0.2"
SYSTEMD = Path("/lib/systemd/systemd")
UNIT = "estran-edge.service"
STUBS = {
    "sysinit.target": "",
    "basic.target": "",
    "multi-user.target": "",
    "default.target": "",
    "shutdown.target": "DefaultDependencies=no\n",
}
BOOT = """\
#!/bin/sh
# PID 1 of a PID and mount namespace of its own (unshare --pid --fork --mount)
set -e
mount -t tmpfs -o mode=0755 tmpfs /run
mount -t proc proc /proc
for d in etc opt var; do
    mkdir -p "{ns}/$d.upper" "{ns}/$d.work"
    mount -t overlay overlay -o "lowerdir=/$d,upperdir={ns}/$d.upper,workdir={ns}/$d.work" "/$d"
done
exec env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin SYSTEMD_UNIT_PATH="{units}:/etc/systemd/system" \\
    {systemd} --system --unit=default.target --log-target=console --log-level=notice
"""


class Unavailable(Exception):
    pass


def _skip_or_fail(reason: str, *, systemd_here: bool) -> None:
    if systemd_here and os.environ.get("CI") == "true":
        pytest.fail(f"systemd is here and does not run in a namespace: {reason}")
    pytest.skip(reason)


def _needs() -> str | None:
    if os.geteuid() != 0:
        return "needs root (a PID and mount namespace, systemd as its PID 1)"
    for tool in ("unshare", "nsenter"):
        if shutil.which(tool) is None:
            return f"no `{tool}` (util-linux)"
    if not SYSTEMD.exists() or shutil.which("systemctl") is None:
        return f"no systemd ({SYSTEMD})"
    if "overlay" not in Path("/proc/filesystems").read_text():
        return "no overlayfs"
    return None


def _child_of(parent: int) -> int:
    """A child process of `parent` (0: none yet): unshare's one child is the new PID 1."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == parent:
                    return int(entry.name)
    return 0


class Systemd:
    """systemd as PID 1 of a namespace; commands run inside it with nsenter."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.proc: subprocess.Popen[bytes] | None = None
        self.pid = 0

    @property
    def root(self) -> Path:
        """The namespace's file system, as this machine sees it."""
        return Path(f"/proc/{self.pid}/root")

    def enter(self, *argv: str) -> list[str]:
        return ["nsenter", "-t", str(self.pid), "-m", "-p", *argv]

    def run(self, *argv: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.enter(*argv), capture_output=True, text=True, timeout=timeout, check=False
        )

    def show(self, unit: str, *props: str) -> dict[str, str]:
        out = self.run("systemctl", "show", "-p", ",".join(props), unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def boot(self) -> None:
        units = self.work / "units"
        units.mkdir(parents=True)
        for name, body in STUBS.items():
            (units / name).write_text(f"[Unit]\nDescription=stub {name}\n{body}")
        script = self.work / "boot.sh"
        script.write_text(BOOT.format(ns=self.work, units=units, systemd=SYSTEMD))
        script.chmod(0o755)
        log = open(self.work / "systemd.log", "wb")  # noqa: SIM115 (closed with the process)
        self.proc = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount", "--propagation", "private", str(script)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        deadline = time.monotonic() + 30
        state = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise Unavailable(f"exited {self.proc.returncode}: {self.log()[-2000:]}")
            if not self.pid:
                self.pid = _child_of(self.proc.pid)
            if self.pid and Path(f"/proc/{self.pid}/exe").resolve().name == "systemd":
                with contextlib.suppress(subprocess.TimeoutExpired):
                    state = self.run("systemctl", "is-system-running", timeout=10).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.3)
        raise Unavailable(f"not running after 30 s (state {state!r}): {self.log()[-2000:]}")

    def log(self) -> str:
        return (self.work / "systemd.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.pid = self.pid or _child_of(self.proc.pid)
        if self.pid and self.proc.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.run("systemctl", "stop", UNIT, timeout=60)  # the daemon commits, says goodbye
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # PID 1 gone: the namespace's processes too
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@contextlib.contextmanager
def booted(work: Path) -> Iterator[Systemd]:
    reason = _needs()
    if reason:
        pytest.skip(reason)
    sd = Systemd(work)
    try:
        try:
            sd.boot()
        except Unavailable as e:
            _skip_or_fail(str(e), systemd_here=True)
        yield sd
    finally:
        sd.stop()


@pytest.fixture(scope="module")
def built() -> dict[str, Release]:
    """1.0.0, 1.0.1 and the broken 1.0.2 (made once: estran.rollout_lab)."""
    return releases([(V1, None), (V2, None), (BROKEN, BREAK_UPLINK)])


async def ns_playbook(
    sd: Systemd, work: Path, inventory: Path, name: str, extra: Mapping[str, object]
) -> Run:
    """ansible-playbook run inside the namespace (its output kept in `work/`)."""
    argv = sd.enter(
        str(ANSIBLE_PLAYBOOK), "-i", str(inventory), str(PLAYBOOKS / name),
        "-e", json.dumps(extra),
    )  # fmt: skip
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env=ansible_env(work), cwd=work,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    text = out.decode(errors="replace")
    (work / f"ansible-{name}-{int(time.time() * 1000)}.log").write_text(text)
    assert proc.returncode is not None
    return Run(proc.returncode, text, time.monotonic() - started)


async def status(sd: Systemd) -> dict[str, Any] | None:
    """`estran edge status --json` of the release that runs, inside the namespace."""
    proc = await asyncio.create_subprocess_exec(
        *sd.enter("/opt/estran/current/bin/estran", "edge", "status", "--json",
                  "--config", "/etc/estran/edge.toml"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    if proc.returncode != 0:
        return None
    with contextlib.suppress(ValueError):
        value = json.loads(out)
        return value if isinstance(value, dict) else None
    return None


def serial_for_the_unit(table: str) -> str:
    """The simulator's `[[serial]]` table with the pseudo-terminal itself (not its link in
    the test's /tmp, which PrivateTmp= hides from the unit), the terminal given to the
    `dialout` group as udev gives a serial adapter (the unit's SupplementaryGroups)."""
    match = re.search(r'^path = "([^"]+)"$', table, re.M)
    assert match, table
    tty = os.path.realpath(match.group(1))
    os.chown(tty, -1, grp.getgrnam("dialout").gr_gid)
    os.chmod(tty, 0o660)
    return table.replace(match.group(0), f'path = "{tty}"')


async def test_provision_and_update_under_systemd(
    tmp_path: Path, built: dict[str, Release]
) -> None:
    timings: dict[str, float] = {}
    started = time.monotonic()
    with booted(tmp_path / "ns") as sd:
        timings["boot"] = round(time.monotonic() - started, 1)
        dropin = sd.root / "etc/systemd/system" / f"{UNIT}.d"
        dropin.mkdir(parents=True)
        (dropin / "test-output.conf").write_text(
            "[Service]\nStandardOutput=append:/run/edge-stdout.log\nStandardError=inherit\n"
        )

        def unit() -> dict[str, str]:
            return sd.show(
                UNIT, "ActiveState", "SubState", "Type", "NotifyAccess", "WatchdogUSec",
                "MainPID", "User", "NRestarts", "Result",
            )  # fmt: skip

        def current() -> str:
            return os.readlink(sd.root / "opt/estran/current").rstrip("/").rsplit("/", 1)[-1]

        def daemon_output() -> str:
            """What a failure needs: systemd's view of the unit and the daemon's output."""
            path = sd.root / "run/edge-stdout.log"
            told = path.read_text(errors="replace")[-3000:] if path.exists() else "(none)"
            seen = sd.run("systemctl", "status", "--no-pager", "-l", UNIT).stdout
            return f"{seen}\n--- daemon output:\n{told}\n--- systemd:\n{sd.log()[-2000:]}"

        async with LabHub(tmp_path) as hub, nmea_port("ttyA", tmp_path / "sim") as table:
            variables = gateway_vars(hub.broker_url) | {
                "ansible_connection": "local",
                "estran_service_mode": "systemd",
                "estran_manage_user": True,
                "estran_user": "estran",
                "estran_group": "estran",
                "estran_python": "/usr/bin/python3",  # the system's: the unit's user reads it
                "estran_manage_packages": False,
                "estran_bluetooth": False,
                "estran_timesync": False,
                "estran_config_extra": serial_for_the_unit(table),
                "estran_gateway_options": {"log_level": "info"},
            }
            inv = static_inventory(tmp_path, {"gw-sd": {}}, variables)

            # -- provision 1.0.0 --------------------------------------------------------------
            run = await ns_playbook(sd, tmp_path, inv, "provision.yml", built[V1].extra_vars())
            timings["provision"] = round(run.seconds, 1)
            assert run.rc == 0, (run.output[-6000:], daemon_output())
            state = unit()
            assert state["ActiveState"] == "active" and state["SubState"] == "running", state
            assert state["Type"] == "notify" and state["NotifyAccess"] == "main", state
            assert state["WatchdogUSec"] == "30s" and state["User"] == "estran", state
            pid1 = int(state["MainPID"])
            assert pid1 > 0 and current() == V1
            owner = (sd.root / f"proc/{pid1}/status").read_text()
            uid = re.search(r"^Uid:\s+(\d+)", owner, re.M)
            assert uid and int(uid.group(1)) != 0, owner  # not root: User=estran
            shipped = (REPO / "edge/systemd" / UNIT).read_text()
            assert (sd.root / "etc/systemd/system" / UNIT).read_text() == shipped
            assert "ProtectSystem=strict" in shipped and "User=estran" in shipped
            s = await status(sd)
            assert s is not None and s["software"] == V1, s
            assert s["uplink"]["state"] == "connected", s
            sensor = next(iter(s["sensors"]))

            def pinged() -> int:  # the last WATCHDOG=1 systemd received (0: none)
                return int(
                    sd.show(UNIT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]
                )

            first = pinged()
            await until("a second watchdog ping", lambda: pinged() > first > 0, 45, daemon_output)
            # pull mode's job unit, rendered by provision.yml, as systemd loads it
            job = sd.show("estran-update@check.service", "LoadState", "User", "ExecStart")
            assert job["LoadState"] == "loaded", job
            assert "edge.update run /var/lib/estran/update/jobs/check" in job["ExecStart"], job

            from_ms = int(time.time() * 1000) - 3_600_000

            async def at_hub() -> bool:
                rows = await hub.readings_between(sensor, from_ms)
                return any(r["gateway"] == "gw-sd" for r in rows)

            await until("readings of gw-sd at the hub", at_hub, 60, daemon_output)

            # -- update to 1.0.1 ---------------------------------------------------------------
            run = await ns_playbook(sd, tmp_path, inv, "update.yml", built[V2].extra_vars())
            timings["update"] = round(run.seconds, 1)
            assert run.rc == 0, (run.output[-6000:], daemon_output())
            state = unit()
            assert state["ActiveState"] == "active" and state["SubState"] == "running", state
            pid2 = int(state["MainPID"])
            assert pid2 not in (0, pid1) and current() == V2, state
            s = await status(sd)
            assert s is not None and s["software"] == V2, s
            assert os.readlink(sd.root / "opt/estran/previous").endswith(V1)

            # -- a broken 1.0.2: the gate fails, back on 1.0.1 by itself --------------------------
            run = await ns_playbook(sd, tmp_path, inv, "update.yml", built[BROKEN].extra_vars())
            timings["rollback"] = round(run.seconds, 1)
            assert run.rc != 0, run.output[-6000:]
            assert f"rolled back to {V2}" in run.output, run.output[-6000:]
            assert current() == V2
            state = unit()
            assert state["ActiveState"] == "active" and state["SubState"] == "running", state
            assert int(state["MainPID"]) not in (0, pid2), state
            s = await status(sd)
            assert s is not None and s["software"] == V2, s
            assert s["uplink"]["state"] == "connected", s
            assert BROKEN not in os.listdir(sd.root / "opt/estran/releases")
    timings["total"] = round(time.monotonic() - started, 1)
    print("timings", json.dumps(timings), "load", os.getloadavg())
