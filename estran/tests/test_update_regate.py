"""update.yml interrupted between the switch and the health gate (an SSH connection dropped,
the hub stopped, a power cut): the next run of the same release gates the new release again
instead of only self-checking it (playbooks/update.yml, the marker gate-pending.json).

Real ansible-playbook (local connection) against one gateway root with its own daemon
(process mode), the release wheels built from this repository; the interruption is a SIGKILL
of ansible-playbook's process group right after it switched `current`.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import grp
import hashlib
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from estran.tests.wheels import REPO, built_wheels

PLAYBOOKS = REPO / "playbooks"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
V1, V2 = "1.0.0", "1.0.1"


def inventory(work: Path, root: Path) -> Path:
    inv = work / "inventory.json"
    inv.write_text(
        json.dumps(
            {
                "gateways": {
                    "hosts": {"gw-regate": {"ansible_connection": "local"}},
                    "vars": {
                        "estran_root": str(root),
                        "ansible_python_interpreter": sys.executable,
                        "estran_python": sys._base_executable,  # type: ignore[attr-defined]
                        "estran_manage_user": False,
                        "estran_user": getpass.getuser(),
                        "estran_group": grp.getgrgid(os.getgid()).gr_name,
                        "estran_service_mode": "process",
                        "estran_broker": "",
                        "estran_gate_require_uplink": False,
                        "estran_gate_require_sources": False,
                        "estran_gate_timeout": 60,
                        "estran_stop_timeout": 20,
                        "estran_pip_args": ["--no-compile"],
                        "estran_pull": False,
                    },
                }
            }
        )
    )
    return inv


def release(wheel: Path, house: Path, version: str) -> dict[str, object]:
    return {
        "estran_version": version,
        "estran_wheel_src": str(wheel),
        "estran_wheel_sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        "estran_wheelhouse_src": str(house),
    }


async def play(
    work: Path, inv: Path, name: str, extra: dict[str, object], *, kill_after: str | None = None
) -> tuple[int, str]:
    """ansible-playbook NAME; `kill_after`: SIGKILL its process group at the first task
    header after the first one that contains this text (the task ran to its end)."""
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "PYTHONUNBUFFERED": "1",
    }
    proc = await asyncio.create_subprocess_exec(
        str(ANSIBLE_PLAYBOOK), "-i", str(inv), str(PLAYBOOKS / name), "-e", json.dumps(extra),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env, cwd=work,
        start_new_session=True,
    )  # fmt: skip
    assert proc.stdout is not None
    lines: list[str] = []
    seen = False
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        raw = await asyncio.wait_for(proc.stdout.readline(), 900)
        if not raw:
            break
        line = raw.decode(errors="replace")
        lines.append(line)
        if kill_after is not None and line.startswith("TASK ["):
            if seen:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            seen = kill_after in line
    rc = await asyncio.wait_for(proc.wait(), 120)
    text = "".join(lines)
    (work / f"ansible-{name}-{int(time.time() * 1000)}.log").write_text(text)
    return rc, text


def ran(out: str, task: str) -> bool:
    """The task `task` of the estran role ran (and passed) in this output: not skipped."""
    parts = out.split(f"TASK [estran : {task}]")
    return any(p.split("TASK [", 1)[0].lstrip("* \n").startswith("ok:") for p in parts[1:])


def status(root: Path) -> dict[str, object] | None:
    binary = root / "opt/estran/current/bin/estran"
    out = subprocess.run(
        [str(binary), "edge", "status", "--json", "--config", str(root / "etc/estran/edge.toml")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return json.loads(out.stdout) if out.returncode == 0 else None


def stop_daemon(root: Path) -> None:
    with contextlib.suppress(OSError, ValueError):
        pid = int((root / "run/estran/estran-edge.pid").read_text())
        os.kill(pid, signal.SIGTERM)
        for _ in range(300):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)


async def test_an_update_interrupted_after_the_switch_is_gated_by_the_next_run(
    tmp_path: Path,
) -> None:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.skip("ansible-playbook is not installed (pip install -e '.[dev]')")
    built, house_dir = await asyncio.to_thread(built_wheels, [(V1, None), (V2, None)])
    house = tmp_path / "wheelhouse.tar"
    with tarfile.open(house, "w") as tar:
        for wheel in sorted(house_dir.glob("*.whl")):
            tar.add(wheel, arcname=wheel.name)
    root = tmp_path / "gw"
    inv = inventory(tmp_path, root)
    marker = root / "opt/estran/gate-pending.json"
    try:
        rc, out = await play(tmp_path, inv, "provision.yml", release(built[V1], house, V1))
        assert rc == 0, out[-4000:]

        # interrupted right after `current` moved to V2: no restart, no gate
        rc, out = await play(
            tmp_path, inv, "update.yml", release(built[V2], house, V2),
            kill_after="Switch current",
        )  # fmt: skip
        assert rc != 0
        assert os.readlink(root / "opt/estran/current").endswith(V2)
        assert json.loads(marker.read_text())["release"].endswith(V2)
        before = status(root)
        assert before is not None and before["software"] == V1  # the daemon of V1 still runs

        # the same release again: restarted on V2 and gated, not only self-checked
        rc, out = await play(tmp_path, inv, "update.yml", release(built[V2], house, V2))
        assert rc == 0, out[-4000:]
        assert ran(out, "Health gate"), out[-4000:]
        after = status(root)
        assert after is not None and after["software"] == V2
        assert not marker.exists()
        assert os.readlink(root / "opt/estran/previous").endswith(V1)

        # and once gated, a run changes nothing (no gate, no restart)
        rc, out = await play(tmp_path, inv, "update.yml", release(built[V2], house, V2))
        assert rc == 0, out[-4000:]
        assert "changed=0" in out and not ran(out, "Health gate")
        again = status(root)
        assert again is not None and again["pid"] == after["pid"]
    finally:
        stop_daemon(root)
