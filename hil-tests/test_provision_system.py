"""The machine around the daemon (playbooks/roles/estran/tasks/system.yml and pull.yml): udev
names for the serial adapters, BlueZ's D-Bus policy, log rotation, time sync, and pull mode's
job unit and polkit rule, rendered by real ansible-playbook runs into a root directory, then
checked by the tools that read them where this machine has them (systemd-analyze verify,
logrotate -d). Idempotent: a second run changes nothing. A root without udev, D-Bus,
logrotate, systemd or polkit gets none of their files, and the run still succeeds.

What is not tested here: udevadm, package installation and services on a real machine (the
test machines have no systemd running); docs/updates.md says so.
"""

from __future__ import annotations

import configparser
import getpass
import grp
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from estran.rollout_lab import PLAYBOOKS, REPO, ansible_env, playbook

PLAY = """\
- name: System extras of a gateway
  hosts: all
  gather_facts: false
  tasks:
    - name: Facts
      ansible.builtin.import_role: {name: estran, tasks_from: facts.yml}
    - name: System
      ansible.builtin.import_role: {name: estran, tasks_from: system.yml}
    - name: Pull
      ansible.builtin.import_role: {name: estran, tasks_from: pull.yml}
"""
ADAPTERS = [
    {"name": "linky", "vendor": "0403", "product": "6001", "serial": "A50285BI"},
    {"name": "rs485", "vendor": "1a86", "product": "7523"},
]


async def play(tmp: Path, root: Path, **extra: object) -> tuple[int, str, dict[str, int]]:
    """The play above on `root` with the local connection: (exit status, output, recap)."""
    (tmp / "play.yml").write_text(PLAY)
    variables = {
        "estran_root": str(root),
        "estran_unit_dir": str(root / "etc/systemd/system"),
        "estran_manage_user": False,
        "estran_manage_packages": False,
        "estran_user": getpass.getuser(),
        "estran_group": grp.getgrgid(os.getgid()).gr_name,
        "estran_serial_adapters": ADAPTERS,
        "estran_ntp_servers": ["ntp1.territory.example", "ntp2.territory.example"],
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **extra,
    }
    env = ansible_env(
        tmp,
        ANSIBLE_ROLES_PATH=str(PLAYBOOKS / "roles"),
        ANSIBLE_LIBRARY=str(PLAYBOOKS / "library"),
    )
    run = await playbook(tmp, "gw,", tmp / "play.yml", variables, env=env, timeout=300)
    return run.rc, run.output, run.recap().get("gw", {})


async def test_system_files_rendered_checked_and_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "etc/systemd/system").mkdir(parents=True)  # as on a machine with systemd
    rc, out, recap = await play(tmp_path, root, estran_service_mode="systemd")
    assert rc == 0, out[-4000:]
    assert recap["changed"] > 0

    rules = (root / "etc/udev/rules.d/70-estran-serial.rules").read_text()
    lines = [line for line in rules.splitlines() if line and not line.startswith("#")]
    assert len(lines) == 2
    assert (
        'ATTRS{idVendor}=="0403", ATTRS{idProduct}=="6001", ATTRS{serial}=="A50285BI"' in lines[0]
    )
    assert 'SYMLINK+="estran/linky"' in lines[0] and 'MODE="0660"' in lines[0]
    assert "ATTRS{serial}" not in lines[1] and 'SYMLINK+="estran/rs485"' in lines[1]

    policy = ET.parse(root / "etc/dbus-1/system.d/estran-bluetooth.conf").getroot()
    assert policy.tag == "busconfig"
    assert policy.find("policy").get("user") == getpass.getuser()  # type: ignore[union-attr]

    ntp = configparser.ConfigParser()
    ntp.read(root / "etc/systemd/timesyncd.conf.d/estran.conf")
    assert ntp["Time"]["NTP"] == "ntp1.territory.example ntp2.territory.example"

    rotate = root / "etc/logrotate.d/estran"
    assert f"{root}/var/log/estran/*.log" in rotate.read_text()
    if shutil.which("logrotate"):
        check = subprocess.run(
            ["logrotate", "-d", "-s", str(tmp_path / "logrotate.state"), str(rotate)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert check.returncode == 0, check.stderr
        assert "error" not in check.stderr.lower(), check.stderr

    pull = json.loads((root / "opt/estran/pull.json").read_text())
    assert pull["estran_root"] == str(root) and pull["estran_service_mode"] == "systemd"
    unit = root / "etc/systemd/system/estran-update@.service"
    assert f"python -m edge.update run {root}/var/lib/estran/update/jobs/%i" in unit.read_text()
    rule = (root / "etc/polkit-1/rules.d/50-estran-update.rules").read_text()
    assert f'subject.user == "{getpass.getuser()}"' in rule and '"start"' in rule
    if shutil.which("systemd-analyze"):
        # the units as systemd reads them (an instance of the template; the daemon's unit)
        bin_dir = root / "opt/estran/current/bin"
        bin_dir.mkdir(parents=True)
        for name in ("python", "estran"):
            (bin_dir / name).symlink_to(shutil.which("true") or "/bin/true")
        units = tmp_path / "units"
        units.mkdir()
        shutil.copy(unit, units / "estran-update@job-1.service")
        edge_unit = (REPO / "edge/systemd/estran-edge.service").read_text()
        (units / "estran-edge.service").write_text(
            edge_unit.replace("/opt/estran", f"{root}/opt/estran")
        )
        for name in ("estran-update@job-1.service", "estran-edge.service"):
            check = subprocess.run(
                ["systemd-analyze", "verify", str(units / name)],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert check.returncode == 0, (name, check.stdout, check.stderr)

    rc, out, recap = await play(tmp_path, root, estran_service_mode="systemd")
    assert rc == 0 and recap["changed"] == 0, out[-4000:]

    # no adapter named any more: the rules are removed
    rc, out, recap = await play(
        tmp_path, root, estran_service_mode="systemd", estran_serial_adapters=[]
    )
    assert rc == 0, out[-4000:]
    assert not (root / "etc/udev/rules.d/70-estran-serial.rules").exists()


async def test_a_machine_without_the_services_gets_none_of_their_files(tmp_path: Path) -> None:
    root = tmp_path / "bare"
    root.mkdir()
    rc, out, _ = await play(
        tmp_path, root, estran_service_mode="process", estran_system_root_dirs=False
    )
    assert rc == 0, out[-4000:]
    assert not (root / "etc").exists(), sorted(str(p) for p in root.rglob("*"))
    assert (root / "opt/estran/pull.json").exists()  # pull mode needs nothing of them
