"""The job runner: a process of its own (`python -m edge.update run JOB_DIR`), started by
the daemon's update agent (process mode: a new session, so that it outlives the daemon the
playbook restarts; systemd: the `estran-update@JOB` unit), one at a time under a lock.

1. lock `<data>/update/lock` (another job running: refused `busy`);
2. the job verified again (signature by a hub key of root's copy, `/opt/estran/
   trusted-keys.json`: never the daemon-writable gateway state; see edge/update/_trust.py);
3. the manifest fetched, its SHA-256 the job's, its signature a trusted hub key's; every file
   of the bundle fetched and checked against it (`fetched`, `verified`);
4. `ansible-playbook -c local` runs the bundle's `update.yml` on this machine, with the
   gateway's own variables (`/etc/estran/pull.json`, written by provision.yml) and the
   release's wheel; each task is reported as it starts (`playbook`);
5. the last report: `done` (the new release passed its health gate), `rolled_back` (it did
   not: the previous release runs again by itself), `failed` (the running release is kept)
   or `refused` (with its code).

Every report goes into the job's journal; the daemon (this one or the next) publishes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

from edge.identity import enrolled_ca, hub_tls_context
from edge.update._errors import FetchError, JobRefused
from edge.update._fetch import fetch_bytes, fetch_file
from edge.update._journal import Journal
from edge.update._trust import TRUSTED_KEYS_FILE, load_trusted_keys
from edge.update._verify import verify_manifest, verify_message
from protocols import signed, update_job

JOB_FILE = "job.cbor"  # the message as received (re-verified by the runner)
SPEC_FILE = "job.json"  # where the gateway's files are (written by the agent)
RUNNER_PID = "runner.pid"
LOCK_NAME = "lock"
ANSIBLE_LOG = "ansible.log"
VARS_FILE = "pull.json"
PLAYBOOK_TIMEOUT_S = 1800.0
MAX_MANIFEST = signed.MAX_SIGNED_PAYLOAD + 1024
_TASK = re.compile(r"^TASK \[(.*)\] \**$")
_ROLLED_BACK = re.compile(r"rolled back to [^\"\n]*")


def find_ansible_playbook(setting: str = "") -> str | None:
    """The ansible-playbook to run: the one the gateway's variables name, else the one beside
    this interpreter (`estran[pull]` in the release), else the system's (PATH)."""
    if setting:
        return setting if os.access(setting, os.X_OK) else None
    beside = Path(sys.executable).with_name("ansible-playbook")
    if os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("ansible-playbook")


@contextlib.contextmanager
def job_lock(update_dir: Path) -> Any:
    """Held for the whole run; raises JobRefused(busy) when another runner holds it."""
    update_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(update_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JobRefused(update_job.BUSY, "another update job is running") from None
        yield
    finally:
        os.close(fd)


def lock_held(update_dir: Path) -> bool:
    try:
        fd = os.open(update_dir / LOCK_NAME, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def vars_path() -> Path:
    """`/opt/estran/pull.json` (root's, written by provision.yml): found from the release this
    runner runs from (`/opt/estran/releases/N`), never from a file the daemon wrote."""
    return Path(sys.prefix).resolve().parents[1] / VARS_FILE


def gateway_vars(path: Path) -> dict[str, Any]:
    """The gateway's own Ansible variables (estran_root, service mode, user...), written by
    provision.yml beside the configuration; {} when there is none."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    return doc if isinstance(doc, dict) else {}


def current_release(variables: dict[str, Any]) -> str:
    """The release `current` names now (its directory's name), "" when none."""
    link = Path(str(variables.get("estran_root", "")) + "/opt/estran/current")
    try:
        return Path(os.readlink(link)).name
    except OSError:
        return ""


def _fetch_bundle(
    job: update_job.UpdateJob, trusted: dict[str, bytes], into: Path, journal: Journal,
    data_dir: Path,
) -> tuple[Path, dict[str, tuple[str, int]], str]:  # fmt: skip
    ca = enrolled_ca(data_dir)
    context = hub_tls_context(ca) if job.manifest_url.startswith("https:") else None
    manifest = fetch_bytes(job.manifest_url, MAX_MANIFEST, context)
    wheel, files = verify_manifest(manifest, job, trusted)
    if into.exists():
        shutil.rmtree(into)
    for path, (sha, size) in sorted(files.items()):
        url = job.files_url + urllib.parse.quote(path)
        got_sha, got_size = fetch_file(url, into / path, size, context)
        if got_sha != sha or got_size != size:
            raise JobRefused(
                update_job.BUNDLE_CHECKSUM,
                f"{path}: SHA-256 {got_sha[:12]}… ({got_size} bytes), the manifest says"
                f" {sha[:12]}… ({size} bytes)",
            )
    journal.append(
        update_job.FETCHED, update_job.RUNNING, f"{len(files)} file(s) of {job.release} fetched"
    )
    journal.append(
        update_job.VERIFIED,
        update_job.RUNNING,
        "manifest signed by a pinned hub key; every file's SHA-256 matches",
    )
    return into, files, wheel


def _playbook(
    job: update_job.UpdateJob, spec: dict[str, Any], bundle: Path, files: dict[str, tuple[str, int]],
    wheel: str, job_dir: Path, journal: Journal,
) -> tuple[int, str]:  # fmt: skip
    """Run update.yml of the bundle locally: (exit status, output)."""
    vars_file = vars_path()
    variables = gateway_vars(vars_file)
    ansible = find_ansible_playbook(str(variables.get("estran_pull_ansible_playbook", "")))
    if ansible is None:
        raise JobRefused(
            update_job.UNSUPPORTED,
            "no ansible-playbook on this gateway (install estran[pull] or ansible-core)",
        )
    extra: dict[str, Any] = {
        "estran_hosts": "all",
        "ansible_connection": "local",
        "estran_version": job.release,
        "estran_wheel_src": str(bundle / wheel),
        "estran_wheel_sha256": files[wheel][0],
        "estran_wheelhouse_src": str(bundle / "wheelhouse.tar") if "wheelhouse.tar" in files else "",
    }  # fmt: skip
    if "ansible_python_interpreter" not in variables:
        extra["ansible_python_interpreter"] = str(Path(ansible).with_name("python"))
    tmp = job_dir / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(bundle / "playbooks" / "ansible.cfg"),
        "ANSIBLE_HOME": str(job_dir.parent.parent / "ansible"),
        "ANSIBLE_LOCAL_TEMP": str(tmp),
        "ANSIBLE_REMOTE_TEMP": str(tmp),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "PYTHONUNBUFFERED": "1",
    }
    argv = [
        ansible, "-i", "localhost,", "-c", "local",
        str(bundle / "playbooks" / "update.yml"),
        "-e", f"@{vars_file}" if vars_file.exists() else "{}",
        "-e", json.dumps(extra),
    ]  # fmt: skip
    output: list[str] = []
    deadline = time.monotonic() + float(spec.get("timeout_s", PLAYBOOK_TIMEOUT_S))
    with open(job_dir / ANSIBLE_LOG, "w") as log:
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=env, cwd=job_dir, text=True, errors="replace", start_new_session=True,
        )  # fmt: skip
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)
            log.flush()
            output.append(line)
            if m := _TASK.match(line.rstrip()):
                journal.append(update_job.PLAYBOOK, update_job.RUNNING, m.group(1))
            if time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                break
        rc = proc.wait()
    if time.monotonic() > deadline:
        return -1, "".join(output) + f"\nthe playbook took longer than {spec.get('timeout_s')} s"
    return rc, "".join(output)


def _failure(output: str) -> str:
    """The reason a failed play gives: its `msg` (last fatal line), or the output's tail."""
    msgs: list[str] = re.findall(r'"msg": "((?:[^"\\]|\\.)*)"', output)
    msgs += re.findall(r"^\s*msg: (.+)$", output, re.M)
    if msgs:
        return str(msgs[-1]).replace("\\n", " ").strip()[: update_job.MAX_REASON]
    return " ".join(output.strip().splitlines()[-3:])[-update_job.MAX_REASON :]


def run_job(job_dir: Path) -> int:
    """Run one job to its end; every outcome goes into the journal. Exit status 0 when the
    new release runs, 1 otherwise."""
    spec: dict[str, Any] = json.loads((job_dir / SPEC_FILE).read_text())
    data_dir = Path(spec["data_dir"])
    update_dir = job_dir.parent.parent
    journal = Journal(job_dir, spec.get("job"), spec.get("seq"), spec.get("release"))

    def finish(outcome: str, reason: str, code: str = "") -> int:
        journal.append(update_job.FINISHED, outcome, reason, code)
        with contextlib.suppress(OSError):
            shutil.rmtree(job_dir / "bundle")
            shutil.rmtree(job_dir / "tmp")
        return 0 if outcome == update_job.DONE else 1

    try:
        with job_lock(update_dir):
            (job_dir / RUNNER_PID).write_text(f"{os.getpid()}\n")
            # root's copy of the hub keys, beside pull.json: not the gateway state, which the
            # daemon's user can write (a key planted there must not give root)
            trusted = load_trusted_keys(vars_path().with_name(TRUSTED_KEYS_FILE))
            job = verify_message((job_dir / JOB_FILE).read_bytes(), trusted, spec["gateway"])
            current = current_release(gateway_vars(vars_path()))
            bundle, files, wheel = _fetch_bundle(
                job, trusted, job_dir / "bundle", journal, data_dir
            )
            rc, output = _playbook(job, spec, bundle, files, wheel, job_dir, journal)
            if rc == 0:
                if current == job.release:
                    return finish(update_job.DONE, f"unchanged: already runs {job.release}")
                return finish(update_job.DONE, f"updated to {job.release}, health gate passed")
            if m := _ROLLED_BACK.search(output):
                return finish(update_job.ROLLED_BACK, m.group(0)[: update_job.MAX_REASON])
            return finish(update_job.FAILED, f"update.yml failed: {_failure(output)}")
    except JobRefused as e:
        return finish(update_job.REFUSED, e.reason, e.code)
    except FetchError as e:
        return finish(update_job.FAILED, str(e))
    except Exception as e:  # the last report must say something, whatever happened
        return finish(update_job.FAILED, f"runner error: {type(e).__name__}: {e}")


__all__ = [
    "JOB_FILE",
    "LOCK_NAME",
    "RUNNER_PID",
    "SPEC_FILE",
    "find_ansible_playbook",
    "lock_held",
    "run_job",
]
