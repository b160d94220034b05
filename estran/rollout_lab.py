"""A fleet of real gateways on one machine, for rollouts: the rollout test
(hil-tests/test_rollouts.py) and `estran bench rollout` use it.

- a hub (`estran hub run`: embedded broker, SQLite) whose registry holds N gateways
  (`rigs-001`, `rigs-002`, then `lab-001`...), enrolled through the registry's own enrollment
  (token, challenge, proof of possession) with a key made here;
- each gateway a root directory (`estran_root`) provisioned by the real playbooks, its own
  daemon process (process mode: pidfile) reading an NMEA simulator on a pseudo-terminal and
  sending to the hub; a few reached over real SSH (an sshd started here on a loopback port
  with a throwaway key), the others with Ansible's local connection;
- Ansible reaches them through the hub's dynamic inventory (playbooks/inventory/estran_hub.py
  over the hub's HTTP API) for plain `ansible-playbook` runs, and through the hub's registry
  for rollouts (`estran fleet rollout start`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import getpass
import grp
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import fleet
from edge.simulators.serial import NmeaSimulator
from estran.bench_sync import wait_hub_ready
from estran.rig import Child, estran_argv, free_port
from fleet import Fleet
from fleet._releases import build_bundle
from protocols import signed

REPO = Path(__file__).resolve().parents[1]
PLAYBOOKS = REPO / "playbooks"
INVENTORY_SCRIPT = PLAYBOOKS / "inventory" / "estran_hub.py"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")


class LabError(Exception):
    """The lab could not be set up (a tool missing, a service that would not start)."""


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


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def port_table(port: dict[str, Any], **extra: object) -> str:
    """A `[[serial]]` table of the gateway's configuration for a simulator's port."""
    lines = ["[[serial]]"]
    lines += [f"{k} = {_toml(v)}" for k, v in {**port, **extra}.items() if k != "devices"]
    for device in port["devices"]:
        lines.append("[[serial.devices]]")
        lines += [f"{k} = {_toml(v)}" for k, v in device.items()]
    return "\n".join(lines) + "\n"


@dataclass
class LabGateway:
    name: str
    root: Path
    ssh: bool

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

    def releases(self) -> list[str]:
        path = self.root / "opt/estran/releases"
        return sorted(p.name for p in path.iterdir()) if path.is_dir() else []

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


@dataclass
class Run:
    rc: int
    output: str
    seconds: float

    def recap(self) -> dict[str, dict[str, int]]:
        import re

        found: dict[str, dict[str, int]] = {}
        for m in re.finditer(r"^(\S+)\s+:\s+((?:\w+=\d+\s*)+)$", self.output, re.M):
            found[m.group(1)] = {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
        return found


@dataclass
class Lab:
    """What `lab()` yields."""

    work: Path
    hub_data: Path
    http_port: int
    mqtt_port: int
    admin_token: str
    hub: Child
    gateways: list[LabGateway]
    ssh_port: int
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def hub_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def gateway(self, name: str) -> LabGateway:
        return next(g for g in self.gateways if g.name == name)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(PLAYBOOKS / "ansible.cfg"),
            "ANSIBLE_HOME": str(self.work / "ansible-home"),
            "ANSIBLE_LOCAL_TEMP": str(self.work / "ansible-tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_SSH_ARGS": "-o ControlMaster=auto -o ControlPersist=2s",
            "ESTRAN_HUB_URL": self.hub_url,
            "ESTRAN_HUB_TOKEN": self.admin_token,
            "ESTRAN_HUB_DATA": str(self.hub_data),
        }

    def release_vars(self, version: str) -> dict[str, object]:
        """The variables of a plain ansible-playbook run installing `version` as the hub
        serves it: the wheel by URL (checked by get_url), the wheelhouse from its bundle."""
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
        name = path.name
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            str(ANSIBLE_PLAYBOOK), "-i", str(INVENTORY_SCRIPT), "-f", str(forks),
            str(path), "-e", json.dumps(extra),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=self.env(), cwd=self.work,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(proc.communicate(), 1200)
        text = out.decode(errors="replace")
        (self.work / f"ansible-{name}-{int(time.time() * 1000)}.log").write_text(text)
        assert proc.returncode is not None
        return Run(proc.returncode, text, time.monotonic() - started)

    async def fleet_cli(self, *args: str, timeout: float = 1200) -> tuple[int, str, str]:
        """`estran fleet --data HUB ...`: (exit status, stdout, stderr)."""
        proc = await asyncio.create_subprocess_exec(
            *estran_argv("fleet", "--data", str(self.hub_data), *args),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=self.env(), cwd=self.work,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
        assert proc.returncode is not None
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        found = await asyncio.gather(*(g.status() for g in self.gateways))
        return {g.name: s for g, s in zip(self.gateways, found, strict=True)}


def _enroll(f: Fleet, group: str) -> str:
    """One gateway enrolled through the registry's enrollment, with a key made here."""
    token = f.create_token(group, 600, "lab").token
    key = Ed25519PrivateKey.generate()
    pub = fleet.raw_public(key)
    nonce = f.challenge(token)
    tid = fleet.parse_token(token)[0]
    proof = key.sign(
        signed.signing_input(signed.CONTEXT_ENROLL, fleet.enroll_proof_payload(tid, nonce, pub))
    )
    return f.enroll(token, pub, nonce, proof, "mqtt://127.0.0.1:1883").gateway_id


def _enroll_root(f: Fleet, group: str, data_dir: Path, broker: str) -> str:
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
    return enroll("http://127.0.0.1", token, data_dir, post=post).identity.gateway_id


def wheelhouse_tar(house: Path, out: Path) -> Path:
    with tarfile.open(out, "w") as tar:
        for wheel in sorted(house.glob("*.whl")):
            tar.add(wheel, arcname=wheel.name)
    return out


@contextlib.asynccontextmanager
async def lab(
    work: Path,
    *,
    gateways: int = 20,
    rigs: int = 2,
    over_ssh: int = 3,
    wheels: dict[str, Path],
    wheelhouse: Path,
    gate_timeout: float = 60,
    interval: float = 1.0,
    identities: bool = False,
) -> AsyncIterator[Lab]:
    """The hub and `gateways` gateway roots (registered, not provisioned yet: provision them
    with `lab.playbook("provision.yml", lab.release_vars(V))`). `wheels`: {version: wheel}
    added to the hub as release bundles. `identities`: each root enrolled as a gateway does it
    (its own key, credentials and the hub's keys in its data directory), so that its daemon
    runs the fleet link and takes pull-mode jobs. Everything is stopped on the way out."""
    if not ANSIBLE_PLAYBOOK.exists():
        raise LabError("ansible-playbook is not installed (pip install -e '.[dev]')")
    work.mkdir(parents=True, exist_ok=True)
    hub_data = work / "hub"
    hub_data.mkdir()
    house = wheelhouse_tar(wheelhouse, work / "wheelhouse.tar")
    names: list[str] = []
    mqtt_port, http_port = free_port(), free_port()  # the hub's: enrolled gateways are told
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
                name = _enroll_root(f, group, scratch, f"mqtt://127.0.0.1:{mqtt_port}")
                (work / "gw" / name / "var/lib").mkdir(parents=True)
                scratch.rename(work / "gw" / name / "var/lib/estran")
                names.append(name)
            else:
                names.append(_enroll(f, group))
        for version, wheel in wheels.items():
            bundle = build_bundle(work / "dist" / version, repo=REPO, wheel=wheel, wheelhouse=house)
            f.add_release(bundle, "lab")
    # over SSH: the second rig and the last ones (the others: local connection)
    ssh_names: set[str] = set(names[len(names) - max(0, over_ssh - 1) :]) if over_ssh > 1 else set()
    if over_ssh:
        ssh_names.add(names[1] if len(names) > 1 else names[0])
    members = [LabGateway(n, work / "gw" / n, n in ssh_names) for n in names]
    hub = Child(
        "hub",
        estran_argv(
            "hub", "run", "--data", str(hub_data), "--broker", "embedded",
            "--mqtt-listen", f"127.0.0.1:{mqtt_port}", "--http", f"127.0.0.1:{http_port}",
            "--log-level", "warning", "--broker-access", "open",
        ),
        work,
    )  # fmt: skip
    sims: list[NmeaSimulator] = []
    with sshd(work / "sshd") if over_ssh else contextlib.nullcontext((0, Path())) as ssh:
        port, key = ssh
        await hub.start()
        try:
            await wait_hub_ready(http_port, hub)
            async with contextlib.AsyncExitStack() as stack:
                for gw in members:
                    sim = NmeaSimulator(f"tty-{gw.name}", directory=work / "sim", interval=interval)
                    await sim.start()
                    stack.push_async_callback(sim.stop)
                    sims.append(sim)
                with Fleet(hub_data) as f:
                    f.set_hostvars(
                        "fleet",
                        None,
                        {
                            "ansible_python_interpreter": sys.executable,
                            "estran_python": sys._base_executable,  # type: ignore[attr-defined]
                            "estran_manage_user": False,
                            "estran_user": getpass.getuser(),
                            "estran_group": grp.getgrgid(os.getgid()).gr_name,
                            "estran_service_mode": "process",
                            "estran_broker": f"mqtt://127.0.0.1:{mqtt_port}",
                            "estran_gate_timeout": gate_timeout,
                            "estran_stop_timeout": 20,
                            "estran_pip_args": ["--no-compile"],
                            # pull mode: the gateways' runner uses this ansible-playbook
                            "estran_pull_ansible_playbook": str(ANSIBLE_PLAYBOOK),
                        },
                        "lab",
                    )
                    for gw, sim in zip(members, sims, strict=True):
                        host: dict[str, object] = {
                            "estran_root": str(gw.root),
                            "estran_config_extra": port_table(
                                sim.port_config(), reconnect_min=0.1, reconnect_max=0.5
                            ),
                        }
                        if gw.ssh:
                            host |= {
                                "ansible_connection": "ssh",
                                "ansible_host": "127.0.0.1",
                                "ansible_port": port,
                                "ansible_user": getpass.getuser(),
                                "ansible_ssh_private_key_file": str(key),
                                "ansible_ssh_common_args": "-o StrictHostKeyChecking=no"
                                " -o UserKnownHostsFile=/dev/null",
                            }
                        else:
                            host["ansible_connection"] = "local"
                        if identities:
                            host["estran_credentials_file"] = str(
                                gw.root / "var/lib/estran/credentials"
                            )
                        f.set_hostvars("gateway", gw.name, host, "lab")
                lab_ = Lab(work, hub_data, http_port, mqtt_port, admin_token, hub, members, port)
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


__all__ = ["Lab", "LabError", "LabGateway", "Run", "enrolled_names", "lab", "port_table", "sshd"]
