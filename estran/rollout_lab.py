"""Real gateways on one machine, updated by the real playbooks: the lab layer of the Ansible
tests (hil-tests/test_updates.py, test_pull_updates.py, test_rollouts.py,
test_provision_system.py) and of `estran bench rollout`.

- **releases**: the estran wheel at any version (and deliberately broken ones), the
  wheelhouse of its dependencies, and release bundles (`estran fleet release build`), each
  made once: kept in a cache keyed by the source tree's digest (`.venv/estran-lab-cache/`,
  or `$ESTRAN_LAB_CACHE`), so that a test session builds one wheel with pip and derives the
  other versions from it, and a second session builds nothing;
- **a hub** (`estran hub run`: embedded broker, SQLite) read through its HTTP API and driven
  with `estran fleet ...`;
- **gateways**: each a root directory (`estran_root`) provisioned by the real playbooks, its
  own daemon process (process mode: pidfile) reading an NMEA simulator on a pseudo-terminal;
  a few reached over real SSH (an sshd started here on a loopback port with a throwaway
  key), the others with Ansible's local connection;
- `lab()`: a hub whose registry holds N gateways (`rigs-001`, `rigs-002`, then `lab-001`...),
  reached through the hub's dynamic inventory (playbooks/inventory/estran_hub.py) for plain
  `ansible-playbook` runs, and through the hub's registry for rollouts;
- **faults** a test cannot make through the product's interfaces: a file of a release
  changed on the hub's disk, update jobs forged with the hub's key (tampered, foreign,
  expired), a command message sent again.

This module is the rig layer: it may use the product's internals; the tests use only it,
`estran.rig`, `protocols` and the product's command lines, HTTP and files.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import fcntl
import getpass
import grp
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.parse
import zipfile
from collections.abc import (
    AsyncIterator,
    Iterator,
    Mapping,
    Sequence,
)
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from estran.rig import (
    Broker,
    Database,
    HubProcess,
    Resource,
    SerialPort,
    Unavailable,
    estran_argv,
    free_port,
)

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"
INVENTORY_SCRIPT = PLAYBOOKS / "inventory" / "estran_hub.py"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")
PIP_S = 600.0

Patches = Mapping[str, tuple[str, str]]


class LabError(Unavailable):
    """The lab could not be set up (a tool missing, a service that would not start): the
    rig's pytest plugin skips the test with the reason, or fails it under CI=true."""


def need_ansible() -> None:
    if not ANSIBLE_PLAYBOOK.exists():
        raise LabError("ansible-playbook is not installed (pip install -e '.[dev]')")


# -- releases: wheels, wheelhouse, bundles, made once -------------------------------------------

_LOCK = threading.Lock()
_MEMO: dict[object, Path] = {}
_KEEP = 3  # source trees whose releases the cache keeps


def cache_root() -> Path:
    """Where releases are kept between sessions: $ESTRAN_LAB_CACHE, else the virtual
    environment's `estran-lab-cache/`, else a directory removed at exit."""
    if env := os.environ.get("ESTRAN_LAB_CACHE"):
        root = Path(env)
    elif sys.prefix != sys.base_prefix:
        root = Path(sys.prefix) / "estran-lab-cache"
    else:
        if "tmp" not in _MEMO:
            _MEMO["tmp"] = Path(tempfile.mkdtemp(prefix="estran-lab-"))
            import atexit

            atexit.register(shutil.rmtree, _MEMO["tmp"], True)
        root = _MEMO["tmp"]
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextlib.contextmanager
def _cache_lock() -> Iterator[Path]:
    """The cache, to this thread and process alone (another session may build beside us)."""
    root = cache_root()
    with _LOCK, open(root / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield root
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _wheel_sources() -> list[str]:
    """The tracked files a release's wheel is built from (no tests, docs, CI)."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout
    return [
        p
        for p in out.decode().split("\0")
        if p
        and not p.startswith(("hil-tests/", "docs/", ".ci/"))
        and "/tests/" not in p
        and (REPO / p).is_file()
    ]


def source_digest() -> str:
    """SHA-256 of the files a wheel or a bundle is made of, as they are in the work tree."""
    digest = hashlib.sha256()
    for rel in sorted(_wheel_sources()):
        digest.update(rel.encode() + b"\0" + (REPO / rel).read_bytes() + b"\0")
    return digest.hexdigest()


def build_wheel(out: Path, version: str | None = None, patches: Patches | None = None) -> Path:
    """`pip wheel` of a copy of the tree (tracked files only) into `out`, another version and
    `{path: (old, new)}` text patches applied to the copy. Returns the wheel's path."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    for rel in _wheel_sources():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    if version is not None:
        py = src / "pyproject.toml"
        py.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', py.read_text()))
        init = src / "estran" / "__init__.py"
        init.write_text(
            re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text())
        )
    for rel, (old, new) in (patches or {}).items():
        path = src / rel
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"patch does not apply to {rel}: {old!r}")
        path.write_text(text.replace(old, new))
    dist = out / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dist), str(src)],
        check=True, timeout=PIP_S, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(src)
    return sorted(dist.glob("estran-*.whl"), key=lambda p: p.stat().st_mtime)[-1]


_WHEEL = re.compile(r"^estran-([^-]+)-py3-none-any\.whl$")


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def derive_wheel(base: Path, out: Path, version: str, patches: Patches | None = None) -> Path:
    """The wheel `pip wheel` would make of the tree at `version` with `patches`, made from the
    built wheel `base` instead of building again: the dist-info renamed, `Version:` and
    `estran.__version__` set, the patched files replaced, RECORD written again (every file's
    SHA-256 and size)."""
    match = _WHEEL.match(base.name)
    if match is None:
        raise LabError(f"{base.name}: not an estran wheel")
    old_info, new_info = f"estran-{match.group(1)}.dist-info/", f"estran-{version}.dist-info/"
    pending = dict(patches or {})
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"estran-{version}-py3-none-any.whl"
    partial = target.with_suffix(".partial")
    records: list[str] = []
    with zipfile.ZipFile(base) as zin, zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as zout:
        for info in zin.infolist():
            name, data = info.filename, zin.read(info)
            if name.startswith(old_info):
                name = new_info + name[len(old_info) :]
                if name == f"{new_info}RECORD":
                    continue
                if name == f"{new_info}METADATA":
                    data = re.sub(
                        rb"(?m)^Version: .*$", f"Version: {version}".encode(), data, count=1
                    )
            elif name == "estran/__init__.py":
                data = re.sub(rb'__version__ = ".*"', f'__version__ = "{version}"'.encode(), data)
            if name in pending:
                old, new = pending.pop(name)
                text = data.decode()
                if old not in text:
                    raise AssertionError(f"patch does not apply to {name}: {old!r}")
                data = text.replace(old, new).encode()
            entry = zipfile.ZipInfo(name, info.date_time)
            entry.external_attr, entry.compress_type = info.external_attr, zipfile.ZIP_DEFLATED
            zout.writestr(entry, data)
            records.append(f"{name},{_record_hash(data)},{len(data)}")
        if pending:
            raise AssertionError(f"patches name files the wheel does not hold: {sorted(pending)}")
        records.append(f"{new_info}RECORD,,")
        zout.writestr(new_info + "RECORD", "\n".join(records) + "\n")
    partial.replace(target)
    return target


def wheelhouse(wheel: Path, extra: str, out: Path) -> Path:
    """The wheels `estran[extra]` needs, beside the estran wheel itself, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "--dest", str(out), f"{wheel}[{extra}]"],
        check=True, timeout=PIP_S, capture_output=True,
    )  # fmt: skip
    return out


def wheelhouse_tar(house: Path, out: Path | None = None) -> Path:
    """The wheelhouse as a release carries it: a flat .tar of wheels (`out`, or beside the
    directory, made once)."""
    out = out or house.with_suffix(".tar")
    if out.exists() and out.stat().st_mtime >= house.stat().st_mtime:
        return out
    partial = out.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        for wheel in sorted(house.glob("*.whl")):
            tar.add(wheel, arcname=wheel.name)
    partial.replace(out)
    return out


def _prune(root: Path, keep: str) -> None:
    """Keep the `_KEEP` source trees used last (and `keep`)."""
    trees = sorted(root.glob("src-*"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in trees[_KEEP:]:
        if old.name != keep:
            shutil.rmtree(old, ignore_errors=True)


def _spec_key(version: str, patches: Patches | None) -> str:
    text = json.dumps([version, sorted((patches or {}).items())])
    return f"{version}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def built_wheels(
    specs: Sequence[tuple[str, Patches | None]], extra: str = "edge"
) -> tuple[dict[str, Path], Path]:
    """Wheels for (version, patches) specs and the wheelhouse of `extra` (a directory of the
    dependency wheels, the estran wheel left out). One `pip wheel` per source tree; the
    versions derived from it (`derive_wheel`); all kept in `cache_root()`."""
    with _cache_lock() as root:
        key = ("tree",)
        tree = _MEMO.get(key)
        if tree is None:
            tree = _MEMO[key] = root / f"src-{source_digest()[:16]}"
        tree.mkdir(exist_ok=True)
        os.utime(tree)
        _prune(root, tree.name)
        base_dir = tree / "base"
        base = (
            next(iter(sorted(base_dir.glob("estran-*.whl"))), None) if base_dir.is_dir() else None
        )
        if base is None:
            with tempfile.TemporaryDirectory(dir=tree, prefix=".build-") as tmp:
                built = build_wheel(Path(tmp))
                base_dir.mkdir(exist_ok=True)
                base = Path(shutil.move(built, base_dir / built.name))
        wheels: dict[str, Path] = {}
        for version, patches in specs:
            out = tree / _spec_key(version, patches)
            found = out / f"estran-{version}-py3-none-any.whl"
            wheels[version] = found if found.exists() else derive_wheel(base, out, version, patches)
        house = _house(root, base, extra)
    return wheels, house


def _house(root: Path, base: Path, extra: str) -> Path:
    """The dependency wheels of `estran[extra]`, kept by what the wheel requires."""
    with zipfile.ZipFile(base) as whl:
        meta = next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))
        requires = [
            line
            for line in whl.read(meta).decode().splitlines()
            if line.startswith(("Requires-Dist:", "Provides-Extra:", "Requires-Python:"))
        ]
    digest = hashlib.sha256(
        json.dumps([requires, extra, sys.version_info[:2], sys.platform]).encode()
    ).hexdigest()[:16]
    house = root / f"wheelhouse-{extra}-{digest}"
    if not (house / ".complete").exists():
        shutil.rmtree(house, ignore_errors=True)
        wheelhouse(base, extra, house)
        for wheel in house.glob("estran-*.whl"):
            wheel.unlink()
        (house / ".complete").touch()
    os.utime(house)
    for old in sorted(root.glob(f"wheelhouse-{extra}-*"), key=lambda p: p.stat().st_mtime)[:-2]:
        if old != house:
            shutil.rmtree(old, ignore_errors=True)
            old.with_suffix(".tar").unlink(missing_ok=True)
    return house


def release_bundle(wheel: Path, house_tar: Path) -> Path:
    """The release bundle of `wheel` and the wheelhouse `house_tar`, as an admin builds it
    (`estran fleet release build --wheel ... --wheelhouse ...`: the wheel, playbooks/ and the
    manifest of their checksums; unsigned: the hub signs it when it is added). Made once per
    wheel and wheelhouse, beside the wheel."""
    match = _WHEEL.match(wheel.name)
    assert match is not None, wheel
    h = hashlib.sha256(house_tar.read_bytes()).hexdigest()[:12]
    bundle = wheel.parent / f"bundle-{h}" / f"estran-release-{match.group(1)}.tar"
    if bundle.exists():
        return bundle
    bundle.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory(dir=bundle.parent, prefix=".build-") as tmp:
        proc = subprocess.run(
            estran_argv("fleet", "release", "build", "--repo", str(REPO), "--out", tmp,
                        "--wheel", str(wheel), "--wheelhouse", str(house_tar)),
            capture_output=True, text=True, timeout=PIP_S,
        )  # fmt: skip
        built = Path(tmp) / bundle.name
        if proc.returncode != 0 or not built.exists():
            raise AssertionError(f"estran fleet release build: {proc.stderr[-2000:]}")
        built.replace(bundle)  # whole or not at all (another session may build it beside us)
    return bundle


@dataclass(frozen=True)
class Release:
    """A release as the tests install it: the wheel, its checksum, the wheelhouse (.tar),
    and its bundle (`estran fleet release build`) for a hub."""

    version: str
    wheel: Path
    sha256: str
    wheelhouse: Path

    @property
    def bundle(self) -> Path:
        return release_bundle(self.wheel, self.wheelhouse)

    def extra_vars(self) -> dict[str, object]:
        """The variables of a playbook run installing it from files on the controller."""
        return {
            "estran_version": self.version,
            "estran_wheel_src": str(self.wheel),
            "estran_wheel_sha256": self.sha256,
            "estran_wheelhouse_src": str(self.wheelhouse),
        }


def releases(specs: Sequence[tuple[str, Patches | None]]) -> dict[str, Release]:
    """`built_wheels` as `Release`s (the wheelhouse a .tar; bundles made when asked for)."""
    need_ansible()
    wheels, house = built_wheels(specs)
    tar = wheelhouse_tar(house)
    return {
        v: Release(v, w, hashlib.sha256(w.read_bytes()).hexdigest(), tar) for v, w in wheels.items()
    }


def bundles(of: Sequence[Release]) -> list[Path]:
    """The bundles of `of`, the missing ones built in parallel."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda r: r.bundle, of))


# A release whose uplink connects to port 1: the daemon runs, reads, buffers, and never
# reaches the hub. Only the health gate can tell.
BREAK_UPLINK: Patches = {
    "edge/uplink/_uplink.py": (
        "            self.broker.port,\n            identifier",
        "            1,\n            identifier",
    )
}


# -- sshd ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sshd(work: Path) -> Iterator[tuple[int, Path]]:
    """An sshd on 127.0.0.1 that lets this user in with a throwaway key: (port, key)."""
    binary = shutil.which("sshd") or "/usr/sbin/sshd"
    if not Path(binary).exists():
        raise LabError("sshd is missing (apt-get install -y openssh-server)")
    work.mkdir(parents=True)
    host_key, key = work / "host_ed25519", work / "id_ed25519"
    for path in (host_key, key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
                       check=True, timeout=30)  # fmt: skip
    authorized = work / "authorized_keys"
    authorized.write_text(key.with_suffix(".pub").read_text())
    authorized.chmod(0o600)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {authorized}\nPidFile {work / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
        "MaxStartups 100:30:200\nMaxSessions 100\n"
        "Subsystem sftp internal-sftp\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
    log = open(work / "sshd.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen([binary, "-D", "-e", "-f", str(config)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 20
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"sshd did not start: {(work / 'sshd.log').read_text()}")
            time.sleep(0.1)
        yield port, key
    finally:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        log.close()


def ssh_hostvars(port: int, key: Path) -> dict[str, object]:
    """How Ansible reaches a gateway root through the lab's sshd."""
    return {
        "ansible_connection": "ssh",
        "ansible_host": "127.0.0.1",
        "ansible_port": port,
        "ansible_user": getpass.getuser(),
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
    }


def gateway_vars(broker_url: str, *, gate_timeout: float = 60) -> dict[str, object]:
    """The variables every lab gateway shares: this machine's interpreter and account, the
    process service mode, the broker, a short gate; no bytecode compiled at install (the
    daemon compiles what it imports)."""
    return {
        "ansible_python_interpreter": sys.executable,
        "estran_python": sys._base_executable,  # type: ignore[attr-defined]
        "estran_manage_user": False,
        "estran_user": getpass.getuser(),
        "estran_group": grp.getgrgid(os.getgid()).gr_name,
        "estran_service_mode": "process",
        "estran_broker": broker_url,
        "estran_gate_timeout": gate_timeout,
        "estran_stop_timeout": 20,
        "estran_pip_args": ["--no-compile"],
        # pull mode: the gateways' runner uses this ansible-playbook
        "estran_pull_ansible_playbook": str(ANSIBLE_PLAYBOOK),
    }


# -- serial simulators -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def nmea_port(name: str, directory: Path, interval: float = 1.0) -> AsyncIterator[str]:
    """An NMEA simulator on a pseudo-terminal; yields its `[[serial]]` table (quick
    reconnects) for `estran_config_extra`."""
    from edge.simulators.serial import NmeaSimulator

    async with NmeaSimulator(name, directory=directory, interval=interval) as sim:
        port = SerialPort("serial.nmea", sim.port_config())
        yield port.toml(reconnect_min=0.1, reconnect_max=0.5)


# -- gateways ----------------------------------------------------------------------------------


@dataclass
class LabGateway:
    """A gateway root on this machine, seen through the files docs/updates.md names and its
    release's `estran edge status --json`."""

    name: str
    root: Path
    ssh: bool = False

    @property
    def current(self) -> Path:
        return self.root / "opt/estran/current"

    @property
    def config(self) -> Path:
        return self.root / "etc/estran/edge.toml"

    @property
    def pidfile(self) -> Path:
        return self.root / "run/estran/estran-edge.pid"

    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            return int(self.pidfile.read_text())
        return None

    def version(self) -> str | None:
        """The release `current` points at."""
        with contextlib.suppress(OSError):
            return os.readlink(self.current).rstrip("/").rsplit("/", 1)[-1]
        return None

    def previous(self) -> str | None:
        """The release `previous` points at (the rollback target)."""
        with contextlib.suppress(OSError):
            return os.readlink(self.root / "opt/estran/previous").rstrip("/").rsplit("/", 1)[-1]
        return None

    def releases(self) -> list[str]:
        path = self.root / "opt/estran/releases"
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

    def update_state(self) -> dict[str, Any]:
        """The pull-mode update agent's `var/lib/estran/update/state.json` ({} before any)."""
        path = self.root / "var/lib/estran/update/state.json"
        return json.loads(path.read_text()) if path.exists() else {}

    async def status(self) -> dict[str, Any] | None:
        """`estran edge status --json` of the release that runs (None: no answer)."""
        binary = self.current / "bin/estran"
        if not binary.exists():
            return None
        proc = await asyncio.create_subprocess_exec(
            str(binary), "edge", "status", "--json", "--config", str(self.config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        if proc.returncode != 0:
            return None
        try:
            value = json.loads(out)
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def stop(self) -> None:
        """Stop the daemon the playbooks started (its own session: nobody else would)."""
        pid = self.pid()
        if pid is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
            for _ in range(300):
                os.kill(pid, 0)
                time.sleep(0.1)
            os.kill(pid, 9)


# -- ansible-playbook ------------------------------------------------------------------------


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        found: dict[str, dict[str, int]] = {}
        for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", self.output, re.M):
            found[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return found

    def unchanged(self, hosts: Sequence[str]) -> bool:
        """The run succeeded and changed nothing on any of `hosts`."""
        recap = self.recap()
        return self.rc == 0 and all(
            h in recap and recap[h]["changed"] == 0 and recap[h]["failed"] == 0 for h in hosts
        )


def ansible_env(work: Path, **extra: str) -> dict[str, str]:
    """The environment of an ansible-playbook run: the repository's ansible.cfg, its own
    home and temporary directory under `work`, a shared SSH connection per run (gone 2 s
    after its last use: none left behind)."""
    return {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
        "ANSIBLE_HOME": str(work / "ansible-home"),
        "ANSIBLE_LOCAL_TEMP": str(work / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=2s",
        **extra,
    }


async def run_command(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path,
    timeout: float,
    merge: bool = False,
) -> tuple[int, str, str]:
    """Run `argv` to its end: (exit status, stdout, stderr; `merge`: stderr in stdout).
    Killed at `timeout` (TimeoutError)."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT if merge else asyncio.subprocess.PIPE,
        env=dict(env), cwd=cwd,
    )  # fmt: skip
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace"), (err or b"").decode(errors="replace")


async def playbook(
    work: Path,
    inventory: Path | str,
    name: str | Path,
    extra: Mapping[str, object],
    *,
    env: Mapping[str, str] | None = None,
    forks: int = 20,
    timeout: float = 1200,
) -> Run:
    """`ansible-playbook -i INVENTORY playbooks/NAME -e EXTRA` (NAME: a playbook of the
    repository, or a path; INVENTORY: a file, or Ansible's `host,` list), its output (stdout
    and stderr) kept in `work/ansible-NAME-MS.log`."""
    need_ansible()
    path = name if isinstance(name, Path) else PLAYBOOKS / name
    started = time.monotonic()
    rc, text, _ = await run_command(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-f", str(forks), str(path),
         "-e", json.dumps(extra)],
        env=dict(env) if env is not None else ansible_env(work), cwd=work, timeout=timeout,
        merge=True,
    )  # fmt: skip
    (work / f"ansible-{path.name}-{int(time.time() * 1000)}.log").write_text(text)
    return Run(rc, text, time.monotonic() - started)


def static_inventory(
    work: Path,
    hosts: Mapping[str, Mapping[str, object]],
    variables: Mapping[str, object],
) -> Path:
    """A static inventory (JSON) of the group `gateways`, written into `work`."""
    path = work / "inventory.json"
    path.write_text(json.dumps({"gateways": {"hosts": hosts, "vars": variables}}))
    return path


# -- the hub ---------------------------------------------------------------------------------


class LabHub(HubProcess):
    """The rig's hub process (`estran hub run`: embedded broker, SQLite, its broker open to
    any client; data in `workdir/hub`), with what the Ansible tests ask of it: `estran
    fleet` runs whose exit status matters, JSON requests that must succeed, readings of a
    time span, rollouts and the audit log over HTTP."""

    def __init__(self, workdir: Path, *, extra: Sequence[str] = ()) -> None:
        super().__init__(
            workdir,
            Broker(Resource("broker.embedded", "embedded", {}), workdir),
            Database(Resource("database", "sqlite", {}), workdir),
            access="open",
            extra=extra,
        )

    @property
    def broker_url(self) -> str:
        return self.broker.url

    async def __aenter__(self) -> LabHub:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def env(self) -> dict[str, str]:
        return {**os.environ, "ESTRAN_HUB_URL": self.url, "ESTRAN_HUB_DATA": str(self.data)}

    async def fleet_run(self, *args: str, timeout: float = 1200) -> tuple[int, str, str]:
        """`estran fleet --data HUB ARGS`, whatever its exit: (status, stdout, stderr)."""
        return await run_command(
            estran_argv("fleet", "--data", str(self.data), *args),
            env=self.env(), cwd=self.data.parent, timeout=timeout,
        )  # fmt: skip

    async def fleet_json(self, *args: str) -> Any:
        """`estran fleet ... --json`, which must succeed: its document."""
        return json.loads(await self.fleet(*args, "--json"))

    async def request(
        self,
        method: str,
        path: str,
        body: object = None,
        *,
        params: Mapping[str, object] | None = None,
    ) -> Any:
        """A request to the hub's HTTP API as the admin, which must succeed: its JSON."""
        query = urllib.parse.urlencode({k: str(v) for k, v in (params or {}).items()})
        status, answer = await self.send(method, path + (f"?{query}" if query else ""), body)
        if not 200 <= status < 300:
            raise AssertionError(f"{method} {path}: HTTP {status}: {str(answer)[:300]}")
        return answer

    async def readings_between(
        self, sensor: str, from_ms: int | None = None, to_ms: int | None = None
    ) -> list[dict[str, Any]]:
        """Readings of `sensor` stamped in [from_ms, to_ms) (GET /api/v1/readings)."""
        out: list[dict[str, Any]] = []
        offset: int | None = 0
        span = {k: v for k, v in (("from", from_ms), ("to", to_ms)) if v is not None}
        while offset is not None:
            query = {"sensor": sensor, "offset": offset, "limit": 10_000, **span}
            page = await self.request("GET", "/api/v1/readings", params=query)
            out += page["readings"]
            offset = page["next_offset"]
        return out

    async def rollout(self, rid: int) -> dict[str, Any]:
        """A rollout as GET /api/v1/fleet/rollouts/ID gives it."""
        found: dict[str, Any] = await self.request("GET", f"/api/v1/fleet/rollouts/{rid}")
        return found

    async def rollout_ids(self) -> set[int]:
        rows = await self.request("GET", "/api/v1/fleet/rollouts", params={"limit": 1000})
        return {int(r["id"]) for r in rows}

    async def start_rollout(
        self, *args: str, timeout: float = 1200
    ) -> tuple[int, asyncio.Task[tuple[int, str, str]]]:
        """`estran fleet rollout start ARGS --json` in the background: the rollout's id, as
        soon as the hub lists it, and the task of the whole run ((status, stdout, stderr))."""
        before = await self.rollout_ids()
        task = asyncio.create_task(
            self.fleet_run("rollout", "start", *args, "--json", timeout=timeout)
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            new = await self.rollout_ids() - before
            if new:
                return min(new), task
            if task.done():
                rc, out, err = task.result()
                raise AssertionError(f"rollout start exited {rc}: {err[-2000:]}{out[-2000:]}")
            await asyncio.sleep(0.5)
        task.cancel()
        raise AssertionError("the rollout was not made within 300 s")

    async def audit(self, action: str, target: str | None = None) -> list[dict[str, Any]]:
        """Audit entries of `action` (GET /api/v1/fleet/audit), of `target` when given."""
        rows = await self.request("GET", "/api/v1/fleet/audit", params={"limit": 10_000})
        return [
            r for r in rows if r["action"] == action and (target is None or r["target"] == target)
        ]


# -- faults on the hub's side (the product's internals: no interface makes them) ----------------


def _fleet(hub_data: Path) -> Any:
    from fleet import Fleet

    return Fleet(hub_data)


@contextlib.contextmanager
def release_file_changed(hub_data: Path, version: str, name: str) -> Iterator[Path]:
    """One byte of a release's file changed on the hub's disk after the hub signed the
    release's manifest; put back on the way out."""
    with _fleet(hub_data) as f:
        directory = f.release_ref(version, "http://unused").directory
    path = Path(directory) / name
    original = path.read_bytes()
    data = bytearray(original)
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    try:
        yield path
    finally:
        path.write_bytes(original)


def forged_jobs(
    hub_data: Path, version: str, hub_url: str, gateway: str, seq: int = 100
) -> dict[str, bytes]:
    """Update jobs (protocols.update_job) for `gateway` that it must refuse, by the code it
    must give: `signature` (a job the hub signed, its payload changed under the signature),
    `foreign` (signed, for another gateway), `expired` (signed, expired a minute ago)."""
    from fleet import Fleet
    from protocols import signed, update_job

    with Fleet(hub_data) as f:
        ref = f.release_ref(version, hub_url)
        assert ref.directory is not None
        manifest_sha = hashlib.sha256((ref.directory / "manifest.signed").read_bytes()).hexdigest()

        def job(gw: str, n: int, **changes: object) -> bytes:
            now = int(time.time() * 1000)
            doc = update_job.UpdateJob(
                gw, f"t{n}-{gw}", n, os.urandom(16), now, now + 60_000, ref.version,
                ref.manifest_url, ref.files_url, manifest_sha,
            ).document() | changes  # fmt: skip
            return f.keys.sign_document(update_job.CONTEXT_UPDATE, doc)

        sd = signed.decode_signed(job(gateway, seq))
        forged = sd.document() | {"release": "6.6.6"}  # the same signature, another payload
        now = int(time.time() * 1000)
        return {
            "signature": signed.encode_signed(
                signed.Signed(signed.encode_payload(forged), sd.signatures)
            ),
            "foreign": job(f"{gateway}-not", seq + 1),
            "expired": job(gateway, seq + 2, issued_ms=now - 120_000, expires_ms=now - 60_000),
        }


def send_cmd(hub_data: Path, gateway: str, body: bytes) -> None:
    """A message on the gateway's `cmd` topic, queued as the hub queues its own (the hub's
    fleet task publishes it)."""
    from protocols import wire

    message = wire.encode_envelope(wire.Envelope(wire.CMD, body))
    with _fleet(hub_data) as f, f._tx() as db:
        f._queue(db, wire.topic(gateway, "cmd"), message, retain=False)
        f._bump(db)


def last_cmd(hub_data: Path, gateway: str) -> bytes:
    """The body of the last message the hub queued on the gateway's `cmd` topic."""
    from protocols import wire

    with _fleet(hub_data) as f, f._lock:
        row = f._db.execute(
            "SELECT payload FROM outbox WHERE topic = ? ORDER BY id DESC LIMIT 1",
            (wire.topic(gateway, "cmd"),),
        ).fetchone()
    assert row is not None, f"no cmd message for {gateway}"
    return bytes(wire.decode_envelope(bytes(row[0]), wire.CMD).body)


# -- a fleet of gateways -----------------------------------------------------------------------


@dataclass
class Lab:
    """What `lab()` yields."""

    work: Path
    hub: LabHub
    admin_token: str
    gateways: list[LabGateway]
    ssh_port: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def hub_data(self) -> Path:
        return self.hub.data

    @property
    def hub_url(self) -> str:
        return self.hub.url

    def gateway(self, name: str) -> LabGateway:
        return next(g for g in self.gateways if g.name == name)

    def env(self) -> dict[str, str]:
        return ansible_env(
            self.work,
            ESTRAN_HUB_URL=self.hub_url,
            ESTRAN_HUB_TOKEN=self.admin_token,
            ESTRAN_HUB_DATA=str(self.hub_data),
        )

    def release_vars(self, version: str) -> dict[str, object]:
        """The variables of a plain ansible-playbook run installing `version` as the hub
        serves it: the wheel by URL (checked by get_url), the wheelhouse from its bundle."""
        from fleet import Fleet

        with Fleet(self.hub_data) as f:
            ref = f.release_ref(version, self.hub_url)
        assert ref.directory is not None
        return {
            "estran_version": version,
            "estran_wheel_url": ref.files_url + ref.wheel,
            "estran_wheel_sha256": ref.sha256(ref.wheel),
            "estran_wheelhouse_src": str(ref.directory / "wheelhouse.tar"),
        }

    async def playbook(self, name: str, extra: dict[str, object], *, forks: int = 20) -> Run:
        """A plain ansible-playbook run of playbooks/NAME with the hub's dynamic inventory."""
        return await self.playbook_file(PLAYBOOKS / name, extra, forks=forks)

    async def playbook_file(self, path: Path, extra: dict[str, object], *, forks: int = 20) -> Run:
        return await playbook(self.work, INVENTORY_SCRIPT, path, extra, env=self.env(), forks=forks)

    async def fleet_cli(self, *args: str, timeout: float = 1200) -> tuple[int, str, str]:
        """`estran fleet --data HUB ...`: (exit status, stdout, stderr)."""
        return await self.hub.fleet_run(*args, timeout=timeout)

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        found = await asyncio.gather(*(g.status() for g in self.gateways))
        return {g.name: s for g, s in zip(self.gateways, found, strict=True)}


def _enroll(f: Any, group: str) -> str:
    """One gateway enrolled through the registry's enrollment, with a key made here."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    import fleet
    from protocols import signed

    token = f.create_token(group, 600, "lab").token
    key = Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    nonce = f.challenge(token)
    tid = fleet.parse_token(token)[0]
    proof = key.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    return str(f.enroll(token, pub, nonce, proof, "mqtt://127.0.0.1:1883").gateway_id)


def _enroll_root(f: Any, group: str, data_dir: Path, broker: str) -> str:
    """One gateway enrolled by the gateway's own enrollment code (edge.identity.enroll: its
    key, broker credentials and the hub's keys kept in `data_dir`, as `estran edge enroll`
    does), its two requests answered by the registry in this process: what pull mode needs."""
    from edge.identity import enroll

    def post(url: str, body: dict[str, object]) -> dict[str, object]:
        if url.endswith("/challenge"):
            return {"nonce": f.challenge(str(body["token"]))}
        result = f.enroll(
            str(body["token"]), base64.b64decode(str(body["public_key"])), str(body["nonce"]),
            base64.b64decode(str(body["proof"])), broker,
        )  # fmt: skip
        return {
            "gateway_id": result.gateway_id,
            "answer": base64.b64encode(result.answer).decode(),
            "config": base64.b64encode(result.config).decode(),
        }

    token = f.create_token(group, 600, "lab").token
    return str(enroll("http://127.0.0.1", token, data_dir, post=post).identity.gateway_id)


@contextlib.asynccontextmanager
async def lab(
    work: Path,
    *,
    gateways: int = 20,
    rigs: int = 2,
    over_ssh: int = 3,
    wheels: Mapping[str, Path] | None = None,
    wheelhouse: Path | None = None,
    releases: Mapping[str, Release] | None = None,
    gate_timeout: float = 60,
    interval: float = 1.0,
    identities: bool = False,
) -> AsyncIterator[Lab]:
    """The hub and `gateways` gateway roots (registered, not provisioned yet: provision them
    with `lab.playbook("provision.yml", lab.release_vars(V))`). `releases` (or `wheels`,
    {version: wheel}, and the `wheelhouse` directory) are added to the hub as release
    bundles. `identities`: each root enrolled as a gateway does it (its own key, credentials
    and the hub's keys in its data directory), so that its daemon runs the fleet link and
    takes pull-mode jobs. Everything is stopped on the way out."""
    from fleet import Fleet

    need_ansible()
    if releases is None:
        assert wheels is not None and wheelhouse is not None
        tar = wheelhouse_tar(wheelhouse)
        releases = {
            v: Release(v, w, hashlib.sha256(w.read_bytes()).hexdigest(), tar)
            for v, w in wheels.items()
        }
    work.mkdir(parents=True, exist_ok=True)
    hub_data = work / "hub"  # LabHub(work)'s
    hub_data.mkdir()
    # the hub is made (its ports chosen) when it starts, so that no other process takes them
    # meanwhile; enrolled identities are told its broker, so then it is made first
    early = LabHub(work) if identities else None
    names: list[str] = []
    with Fleet(hub_data) as f:
        admin_token = f.ensure_admin()
        assert admin_token is not None
        f.create_group("rigs", "lab")
        f.create_group("lab", "lab")
        for i in range(gateways):
            group = "rigs" if i < min(rigs, gateways) else "lab"
            if identities:
                # the name comes from the registry: enroll into a scratch directory, then move it
                scratch = work / "gw" / f".enroll-{i}"
                assert early is not None
                name = _enroll_root(f, group, scratch, early.broker_url)
                (work / "gw" / name / "var/lib").mkdir(parents=True)
                scratch.rename(work / "gw" / name / "var/lib/estran")
                names.append(name)
            else:
                names.append(_enroll(f, group))
        for bundle in bundles(list(releases.values())):
            f.add_release(bundle, "lab")
    # over SSH: the second rig and the last ones (the others: local connection)
    ssh_names: set[str] = set(names[len(names) - max(0, over_ssh - 1) :]) if over_ssh > 1 else set()
    if over_ssh:
        ssh_names.add(names[1] if len(names) > 1 else names[0])
    members = [LabGateway(n, work / "gw" / n, n in ssh_names) for n in names]
    with sshd(work / "sshd") if over_ssh else contextlib.nullcontext((0, Path())) as ssh:
        port, key = ssh
        hub = early or LabHub(work)
        await hub.start()
        try:
            async with contextlib.AsyncExitStack() as stack:
                tables = [
                    await stack.enter_async_context(
                        nmea_port(f"tty-{gw.name}", work / "sim", interval)
                    )
                    for gw in members
                ]
                with Fleet(hub.data) as f:
                    f.set_hostvars(
                        "fleet", None, gateway_vars(hub.broker_url, gate_timeout=gate_timeout),
                        "lab",
                    )  # fmt: skip
                    for gw, table in zip(members, tables, strict=True):
                        host: dict[str, object] = {
                            "estran_root": str(gw.root),
                            "estran_config_extra": table,
                        }
                        if gw.ssh:
                            host |= ssh_hostvars(port, key)
                        else:
                            host["ansible_connection"] = "local"
                        if identities:
                            host["estran_credentials_file"] = str(
                                gw.root / "var/lib/estran/credentials"
                            )
                        f.set_hostvars("gateway", gw.name, host, "lab")
                hub._token = admin_token
                lab_ = Lab(work, hub, admin_token, members, port)
                try:
                    yield lab_
                finally:
                    for gw in members:
                        gw.stop()
                    (work / "timings.json").write_text(json.dumps(lab_.timings))
        finally:
            await hub.stop()


def enrolled_names(n: int, rigs: int = 2) -> Sequence[str]:
    """The ids `lab()` gives its gateways, in order."""
    return [f"rigs-{i + 1:03d}" for i in range(min(rigs, n))] + [
        f"lab-{i + 1:03d}" for i in range(n - min(rigs, n))
    ]


__all__ = [
    "ANSIBLE_PLAYBOOK",
    "BREAK_UPLINK",
    "INVENTORY_SCRIPT",
    "PLAYBOOKS",
    "REPO",
    "Lab",
    "LabError",
    "LabGateway",
    "LabHub",
    "Release",
    "Run",
    "ansible_env",
    "build_wheel",
    "built_wheels",
    "bundles",
    "cache_root",
    "derive_wheel",
    "enrolled_names",
    "forged_jobs",
    "gateway_vars",
    "lab",
    "last_cmd",
    "need_ansible",
    "nmea_port",
    "playbook",
    "release_bundle",
    "release_file_changed",
    "releases",
    "send_cmd",
    "source_digest",
    "ssh_hostvars",
    "sshd",
    "static_inventory",
    "wheelhouse",
    "wheelhouse_tar",
]
