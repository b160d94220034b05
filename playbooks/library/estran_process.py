"""Ansible module: the gateway daemon as a plain process with a pidfile (process mode).

Where there is no systemd (containers, tests, the demo) the playbooks run the daemon as a
detached process: its own session, stdin from /dev/null, output appended to a log file, its
pid in a pidfile. `stopped` sends SIGTERM and waits (the daemon commits its buffer and says
goodbye), then SIGKILL after `stop_timeout`. A pidfile whose process is gone, or is not this
daemon (a reused pid: its command line must name the configuration file), counts as stopped.
`reloaded` sends SIGHUP. Idempotent: `started` on a running daemon changes nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: estran_process
short_description: Run the Estran gateway daemon as a process with a pidfile
options:
  state:
    choices: [started, stopped, restarted, reloaded]
    default: started
  argv: {type: list, elements: str, required: true, description: "the daemon's command line"}
  pidfile: {type: path, required: true}
  log: {type: path, required: true}
  stop_timeout: {type: float, default: 40}
  start_check: {type: float, default: 1.0, description: "seconds the process must survive"}
"""


def running_pid(pidfile: Path, marker: str) -> int | None:
    """The pid in `pidfile` when that process is alive and its command line has `marker`."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    return pid if marker in cmdline else None


def stop(pidfile: Path, marker: str, timeout: float) -> bool:
    pid = running_pid(pidfile, marker)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and running_pid(pidfile, marker) == pid:
        time.sleep(0.1)
    if running_pid(pidfile, marker) == pid:
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    pidfile.unlink(missing_ok=True)
    return True


def start(argv: list[str], pidfile: Path, log: Path, check: float) -> int:
    log.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        out.write(f"--- {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start: "
                  f"{' '.join(argv)}\n".encode())  # fmt: skip
        out.flush()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
            close_fds=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    tmp = pidfile.with_name(pidfile.name + ".tmp")
    tmp.write_text(f"{proc.pid}\n")
    os.replace(tmp, pidfile)
    deadline = time.monotonic() + check
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pidfile.unlink(missing_ok=True)
            raise RuntimeError(f"the daemon exited at once with status {proc.returncode}")
        time.sleep(0.05)
    return proc.pid


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {
                "choices": ["started", "stopped", "restarted", "reloaded"],
                "default": "started",
            },
            "argv": {"type": "list", "elements": "str", "required": True},
            "pidfile": {"type": "path", "required": True},
            "log": {"type": "path", "required": True},
            "stop_timeout": {"type": "float", "default": 40.0},
            "start_check": {"type": "float", "default": 1.0},
        },
        supports_check_mode=True,
    )
    p = module.params
    argv: list[str] = p["argv"]
    pidfile, log = Path(p["pidfile"]), Path(p["log"])
    marker = argv[-1]  # the configuration file: names this gateway's daemon among others
    pid = running_pid(pidfile, marker)
    state = p["state"]
    if module.check_mode:
        changed = (state == "started" and pid is None) or (state == "stopped" and pid is not None)
        module.exit_json(changed=changed or state in ("restarted", "reloaded"), pid=pid)
    try:
        if state == "started":
            if pid is not None:
                module.exit_json(changed=False, pid=pid)
            module.exit_json(changed=True, pid=start(argv, pidfile, log, p["start_check"]))
        if state == "stopped":
            module.exit_json(changed=stop(pidfile, marker, p["stop_timeout"]), pid=None)
        if state == "reloaded":
            if pid is None:  # not running: it reads the file when it starts
                module.exit_json(changed=False, pid=None)
            os.kill(pid, signal.SIGHUP)
            module.exit_json(changed=True, pid=pid)
        stop(pidfile, marker, p["stop_timeout"])
        module.exit_json(changed=True, pid=start(argv, pidfile, log, p["start_check"]))
    except (OSError, RuntimeError) as e:
        tail = ""
        with contextlib.suppress(OSError):
            tail = log.read_text(errors="replace")[-2000:]
        module.fail_json(msg=f"{state}: {e}", log_tail=tail)


if __name__ == "__main__":
    main()
