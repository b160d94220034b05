"""The doctor's checks: each says ok, warn, fail (or skip) with a reason and, when it is not
ok, a hint for the technician. Everything the checks touch outside Python (commands, /proc,
/sys, the clock, file permissions) goes through `Environment`, so that tests can stage it."""

from __future__ import annotations

import contextlib
import email.utils
import grp
import http.client
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from edge.config import ConfigError, EdgeConfig, load_config
from edge.doctor._mqtt import CONNACK_REASONS, MqttProbeError, probe_broker
from edge.health import StatusUnavailable, ble_sources, read_status
from edge.identity import CAFileError, enrolled_ca, hub_tls_context
from protocols import settings

Status = Literal["ok", "warn", "fail", "skip"]
RunResult = tuple[int, str] | None  # (exit status, stdout), None when the command is absent

PLAUSIBLE_AFTER = 1_704_067_200  # 2024-01-01: a clock before this was never set (no RTC)
CLOCK_WARN_S = 2.0
CLOCK_FAIL_S = 60.0
MIN_FREE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    status: Status
    reason: str
    hint: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": self.status, "reason": self.reason, "hint": self.hint}


def _run(argv: list[str], timeout: float) -> RunResult:
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.returncode, done.stdout


def _http_date(host: str, port: int, timeout: float) -> float | None:
    """The server's clock from an HTTP Date header (one-second resolution), corrected by half
    the round trip; None when it cannot be had."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        sent = time.time()
        conn.request("HEAD", "/")
        response = conn.getresponse()
        received = time.time()
        header = response.getheader("Date")
    except (OSError, http.client.HTTPException):
        return None
    finally:
        conn.close()
    if not header:
        return None
    try:
        stamp = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        return None
    # The header is truncated to the second (on average half a second behind), and the server
    # read its clock about half-way through the round trip: its time now, as we received.
    return stamp + 0.5 + (received - sent) / 2


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


@dataclass
class Environment:
    run: Callable[[list[str], float], RunResult] = _run
    http_date: Callable[[str, int, float], float | None] = _http_date
    now: Callable[[], float] = time.time
    access: Callable[[str, int], bool] = os.access
    groups: Callable[[], list[int]] = os.getgroups
    user: Callable[[], str] = _user
    proc: Path = Path("/proc")
    sys_bluetooth: Path = Path("/sys/class/bluetooth")
    sys_rfkill: Path = Path("/sys/class/rfkill")
    timeout: float = 5.0
    notes: list[str] = field(default_factory=list)


# -- configuration ---------------------------------------------------------------------------


def check_config(path: Path) -> tuple[Check, EdgeConfig | None]:
    try:
        config = load_config(path)
    except ConfigError as e:
        details = "; ".join(str(issue) for issue in e.issues[:5])
        more = f" (+{len(e.issues) - 5} more)" if len(e.issues) > 5 else ""
        return (
            Check(
                "config",
                "fail",
                f"{path}: {details}{more}",
                "fix the fields named; docs/configuration.md has an example per sensor kind",
            ),
            None,
        )
    sources = len(config.serial) + (1 if config.ble is not None and config.ble.devices else 0)
    return (
        Check(
            "config",
            "ok",
            f"{path}: gateway {config.gateway.id}, {sources} sources, "
            f"{len(config.sensor_ids())} sensors",
        ),
        config,
    )


# -- clock -----------------------------------------------------------------------------------


def _time_reference(config: EdgeConfig | None, time_url: str | None) -> tuple[str, int] | None:
    if time_url:
        parts = urlsplit(time_url if "://" in time_url else "http://" + time_url)
        if parts.hostname:
            return parts.hostname, parts.port or 80
    if config is not None and config.uplink is not None:
        return settings.parse_broker(config.uplink.broker)[0], 80
    return None


def check_clock(config: EdgeConfig | None, env: Environment, time_url: str | None = None) -> Check:
    now = env.now()
    if now < PLAUSIBLE_AFTER:
        return Check(
            "clock",
            "fail",
            f"the clock says {time.strftime('%Y-%m-%d %H:%M', time.gmtime(now))} UTC: never set",
            "a Pi has no battery clock: enable time sync before the daemon starts "
            "(systemctl enable --now systemd-timesyncd, or chrony)",
        )
    done = env.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"], 3.0)
    if done is not None and done[0] == 0 and done[1].strip() in ("yes", "no"):
        if done[1].strip() == "yes":
            return Check("clock", "ok", "synchronized (timedatectl: NTPSynchronized=yes)")
        return Check(
            "clock",
            "warn",
            "not synchronized (timedatectl: NTPSynchronized=no)",
            "timedatectl timesync-status; is NTP (UDP 123) reachable from here?",
        )
    done = env.run(["chronyc", "-n", "tracking"], 3.0)
    if done is not None and done[0] == 0:
        fields = {
            k.strip(): v.strip()
            for k, _, v in (line.partition(":") for line in done[1].splitlines())
            if v
        }
        leap = fields.get("Leap status", "")
        system_time = fields.get("System time", "")
        if leap == "Normal":
            return Check("clock", "ok", f"synchronized (chrony; system time {system_time or '?'})")
        return Check(
            "clock",
            "warn",
            f"not synchronized (chrony: leap status {leap or 'unknown'})",
            "chronyc sources -v; is NTP (UDP 123) reachable from here?",
        )
    done = env.run(["ntpstat"], 3.0)
    if done is not None and done[0] in (0, 1):
        if done[0] == 0:
            return Check("clock", "ok", "synchronized (ntpstat)")
        return Check("clock", "warn", "not synchronized (ntpstat)", "ntpq -p; is UDP 123 open?")
    reference = _time_reference(config, time_url)
    if reference is not None:
        host, port = reference
        theirs = env.http_date(host, port, env.timeout)
        if theirs is not None:
            offset = env.now() - theirs
            text = (
                f"no time-sync service found; clock {abs(offset):.1f} s "
                f"{'ahead of' if offset > 0 else 'behind'} {host}:{port} (HTTP Date: one-second "
                "resolution, best effort)"
            )
            hint = "install or enable systemd-timesyncd or chrony: readings carry this clock"
            if abs(offset) <= CLOCK_WARN_S:
                return Check("clock", "ok", text)
            return Check("clock", "warn" if abs(offset) <= CLOCK_FAIL_S else "fail", text, hint)
    return Check(
        "clock",
        "warn",
        "cannot tell whether the clock is synchronized: no timedatectl, chronyc or ntpstat "
        "answered, and no HTTP reference was reachable (best effort)",
        "enable systemd-timesyncd or chrony; or give --time-url http://HOST to compare with",
    )


# -- disk ------------------------------------------------------------------------------------


def _tree_bytes(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_disk(config: EdgeConfig, env: Environment) -> Check:
    data = config.gateway.data_dir
    existing = data
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    user = env.user()
    if existing != data and not env.access(str(existing), os.W_OK):
        return Check(
            "disk",
            "fail",
            f"{data} does not exist and {user} cannot create it in {existing}",
            f"sudo install -d -o {user} {data}",
        )
    if existing == data and not env.access(str(data), os.W_OK | os.X_OK):
        return Check(
            "disk", "fail", f"{data} is not writable by {user}", f"sudo chown -R {user} {data}"
        )
    st = os.statvfs(existing)
    free = st.f_bavail * st.f_frsize
    used = _tree_bytes(config.gateway.buffer_dir) if config.gateway.buffer_dir.exists() else 0
    quota = config.buffer.quota_bytes
    grow = max(0, quota - used)
    text = f"{_size(free)} free for {data}; buffer uses {_size(used)} of its {_size(quota)} quota"
    if free < MIN_FREE_BYTES:
        return Check(
            "disk",
            "fail",
            text,
            "free some space: when the disk is full the buffer cannot commit and readings are lost",
        )
    if free < grow:
        return Check(
            "disk",
            "warn",
            text + f": it may still grow by {_size(grow)}, more than is free",
            "lower buffer.quota below the free space, or free space, so the quota is what bounds it",
        )
    return Check("disk", "ok", text)


# -- broker ----------------------------------------------------------------------------------


def _credentials(path: Path) -> tuple[str, str | None]:
    text = path.read_text().strip()
    user, sep, password = text.partition(":")
    if not user:
        raise ValueError("expected username:password on one line")
    return user, password if sep else None


def check_broker(config: EdgeConfig, env: Environment) -> Check:
    uplink = config.uplink
    if uplink is None:
        return Check("broker", "skip", "no [uplink] configured: readings stay in the buffer")
    host, port, secure = settings.parse_broker(uplink.broker)  # the loader checked it
    context: ssl.SSLContext | None = None
    ca = uplink.ca_file or enrolled_ca(config.gateway.data_dir)
    trust = f"the CA in {ca}" if ca is not None else "the system's CAs"
    if secure:
        try:
            context = hub_tls_context(ca)
        except CAFileError as e:
            return Check(
                "broker",
                "fail",
                f"TLS: {e}",
                "[uplink] ca_file, or the hub-ca.crt that `estran edge enroll --ca` kept in "
                "the data directory, must be the hub's CA (PEM, `estran fleet tls init`)",
            )
    username = password = None
    if uplink.credentials_file is not None:
        try:
            username, password = _credentials(uplink.credentials_file)
        except (OSError, ValueError) as e:
            return Check(
                "broker",
                "fail",
                f"cannot read the credentials file {uplink.credentials_file}: "
                f"{getattr(e, 'strerror', None) or e}",
                "it is written by `estran edge enroll`; it must be readable by the daemon's user",
            )
    started = time.monotonic()
    try:
        code = probe_broker(
            host,
            port,
            f"estran-doctor-{config.gateway.id}",
            username,
            password,
            env.timeout,
            tls=context,
        )
    except MqttProbeError as e:
        if e.stage == "tls":
            return Check(
                "broker",
                "fail",
                f"{host}:{port} refused the TLS handshake: {e} (trusting {trust})",
                "the hub's certificate must be signed by that CA and name this host: "
                "check [uplink] ca_file and the broker's host name, or enroll again with "
                "--ca (`estran fleet tls init` on the hub makes both)",
            )
        if e.stage == "connect":
            return Check(
                "broker",
                "fail",
                f"cannot reach {host}:{port}: {e}",
                "check the network, DNS and firewall (TCP {port}); ping and `nc -vz HOST PORT`".replace(
                    "{port}", str(port)
                ),
            )
        return Check(
            "broker",
            "fail",
            f"{host}:{port} answers TCP but not MQTT: {e}",
            "is this the broker's port? (MQTT is 1883, mqtts:// TLS 8883)",
        )
    elapsed_ms = (time.monotonic() - started) * 1000
    as_user = f" as {username}" if username else " without credentials"
    over = f" over TLS (trusting {trust})" if secure else ""
    if code == 0:
        return Check(
            "broker",
            "ok",
            f"{host}:{port} accepted an MQTT 3.1.1 CONNECT{as_user}{over} ({elapsed_ms:.0f} ms)",
        )
    reason = CONNACK_REASONS.get(code, f"return code {code}")
    hint = (
        "the credentials are refused: re-run `estran edge enroll`, or ask the fleet admin"
        if code in (4, 5)
        else "the broker is up but refuses the connection: check its log"
    )
    return Check("broker", "fail", f"{host}:{port} refused the CONNECT{as_user}: {reason}", hint)


# -- serial ----------------------------------------------------------------------------------


def _group_name(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return str(gid)


def check_serial(config: EdgeConfig, env: Environment) -> list[Check]:
    if not config.serial:
        return [Check("serial", "skip", "no serial ports configured")]
    out: list[Check] = []
    user = env.user()
    for port in config.serial:
        name = f"serial {port.path}"
        path = port.path
        if not os.path.exists(path):
            out.append(
                Check(
                    name,
                    "fail",
                    f"{path} does not exist",
                    "is the adapter plugged in? ls -l /dev/serial/by-id/; dmesg | tail",
                )
            )
            continue
        real = os.path.realpath(path)
        shown = path if real == path else f"{path} -> {real}"
        if env.access(real, os.R_OK | os.W_OK):
            out.append(Check(name, "ok", f"{shown}: readable and writable by {user}"))
            continue
        st = os.stat(real)
        group = _group_name(st.st_gid)
        try:
            members = grp.getgrgid(st.st_gid).gr_mem
        except KeyError:
            members = []
        if user in members and st.st_gid not in env.groups():
            hint = (
                f"{user} was added to {group} after this session started: log in again "
                "(or restart the service)"
            )
        else:
            hint = f"sudo usermod -aG {group} {user}, then restart the service"
        out.append(
            Check(
                name,
                "fail",
                f"{shown}: {user} cannot read and write it (group {group}, mode "
                f"{oct(st.st_mode & 0o777)})",
                hint,
            )
        )
    return out


# -- BLE -------------------------------------------------------------------------------------


def _process_running(env: Environment, name: str) -> bool:
    try:
        entries = list(env.proc.iterdir())
    except OSError:
        return False
    for entry in entries:
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if (entry / "comm").read_text().strip() == name:
                return True
    return False


def _rfkill_blocked(env: Environment) -> bool:
    try:
        entries = list(env.sys_rfkill.iterdir())
    except OSError:
        return False
    for entry in entries:
        with contextlib.suppress(OSError):
            if (entry / "type").read_text().strip() == "bluetooth" and (
                entry / "soft"
            ).read_text().strip() == "1":
                return True
    return False


def check_ble(
    config: EdgeConfig, env: Environment, snapshot: dict[str, object] | None = None
) -> Check:
    """The adapter, checked without opening it. While the daemon runs (`snapshot`, its
    status) nothing that could take the adapter from it is tried (a bumble transport takes
    one client): its BLE source's state is reported instead."""
    ble = config.ble
    if ble is None or not ble.devices:
        return Check("ble", "skip", "no BLE devices configured")
    spec = ble.backend
    running = ble_sources(snapshot) if snapshot is not None else {}
    if running:
        states = {name: s.get("state") for name, s in sorted(running.items())}
        down = {name: state for name, state in states.items() if state != "up"}
        text = ", ".join(f"{n} {s}" for n, s in states.items())
        if down:
            detail = "; ".join(
                f"{n}: {running[n].get('detail') or running[n].get('state')}" for n in down
            )
            return Check(
                "ble",
                "fail",
                f"the running daemon's BLE source is not up ({detail}); the adapter was not "
                "opened, so as not to disturb the daemon",
                "estran edge status shows its errors (adapter_lost...); "
                "journalctl -u estran-edge -e",
            )
        return Check(
            "ble",
            "ok",
            f"in use by the running daemon ({text}): checked through its status, not opened",
        )
    if spec.kind == "bluez":
        adapter = spec.target or "hci0"
        if not (env.sys_bluetooth / adapter).exists():
            present = (
                sorted(p.name for p in env.sys_bluetooth.glob("hci*"))
                if env.sys_bluetooth.exists()
                else []
            )
            return Check(
                "ble",
                "fail",
                f"no Bluetooth adapter {adapter}"
                + (f" (present: {', '.join(present)})" if present else ""),
                "is the dongle plugged in? btmgmt info; dmesg | grep -i bluetooth",
            )
        if _rfkill_blocked(env):
            return Check(
                "ble", "fail", f"{adapter} is blocked by rfkill", "rfkill unblock bluetooth"
            )
        if not _process_running(env, "bluetoothd"):
            return Check(
                "ble",
                "fail",
                "bluetoothd is not running (BlueZ)",
                "sudo systemctl enable --now bluetooth",
            )
        done = env.run(["busctl", "--system", "--no-pager", "status", "org.bluez"], 3.0)
        if done is not None and done[0] != 0:
            return Check(
                "ble",
                "fail",
                "org.bluez is not on the system D-Bus",
                "sudo systemctl restart bluetooth; journalctl -u bluetooth -e",
            )
        bus = "" if done is None else ", org.bluez on D-Bus"
        return Check("ble", "ok", f"adapter {adapter} present, bluetoothd running{bus}")
    transport = spec.target or ""
    kind, _, rest = transport.partition(":")
    if kind == "tcp-client":
        host, _, port_text = rest.rpartition(":")
        try:
            with socket.create_connection((host, int(port_text)), timeout=env.timeout):
                pass
        except (OSError, ValueError) as e:
            return Check(
                "ble",
                "fail",
                f"bumble transport {transport}: cannot connect: {getattr(e, 'strerror', None) or e}",
                "is the HCI bridge (or the radio-world simulator) running there?",
            )
        return Check("ble", "ok", f"bumble transport {transport} accepts connections")
    if kind == "serial":
        path = rest.split(",")[0]
        if not os.path.exists(path):
            return Check(
                "ble",
                "fail",
                f"bumble transport {transport}: {path} does not exist",
                "is the HCI controller plugged in? ls -l /dev/serial/by-id/",
            )
        if not env.access(os.path.realpath(path), os.R_OK | os.W_OK):
            return Check(
                "ble",
                "fail",
                f"bumble transport {transport}: {path} is not read/write",
                f"sudo usermod -aG dialout {env.user()}",
            )
        return Check("ble", "ok", f"bumble transport {transport}: {path} present and read/write")
    if kind == "local":
        return Check(
            "ble",
            "warn",
            f"bumble transport {transport} is an in-process emulated controller",
            "only the tests and the demo register local transports",
        )
    return Check(
        "ble",
        "warn",
        f"bumble transport {transport}: cannot be checked without opening it",
        "the daemon reports it as adapter_lost in `estran edge status` if it fails",
    )


# -- the daemon ------------------------------------------------------------------------------


def daemon_status(config: EdgeConfig) -> dict[str, object] | StatusUnavailable:
    """The running daemon's snapshot, or why there is none."""
    try:
        return read_status(config.gateway.status_socket, timeout=2.0)
    except StatusUnavailable as e:
        return e


def check_daemon(
    config: EdgeConfig, status: dict[str, object] | StatusUnavailable | None = None
) -> Check:
    snapshot = daemon_status(config) if status is None else status
    if isinstance(snapshot, StatusUnavailable):
        e = snapshot
        return Check(
            "daemon",
            "warn",
            f"not running: {e.reason}",
            "systemctl status estran-edge; journalctl -u estran-edge -e",
        )
    sources = snapshot.get("sources")
    states = (
        {n: s.get("state") for n, s in sources.items() if isinstance(s, dict)}
        if isinstance(sources, dict)
        else {}
    )
    down = sorted(n for n, state in states.items() if state != "up")
    text = (
        f"running (pid {snapshot.get('pid')}): {len(states) - len(down)}/{len(states)} sources up"
    )
    if down:
        return Check(
            "daemon",
            "warn",
            text + f"; not up: {', '.join(down)}",
            "estran edge status shows each source's detail and errors",
        )
    return Check("daemon", "ok", text)


def run_checks(
    config_path: Path, env: Environment | None = None, time_url: str | None = None
) -> list[Check]:
    env = env or Environment()
    config_check, config = check_config(config_path)
    checks = [config_check, check_clock(config, env, time_url)]
    if config is None:
        return checks
    checks.append(check_disk(config, env))
    checks.append(check_broker(config, env))
    checks += check_serial(config, env)
    status = daemon_status(config)  # first: nothing the daemon holds is opened while it runs
    snapshot = status if isinstance(status, dict) else None
    checks.append(check_ble(config, env, snapshot))
    checks.append(check_daemon(config, status))
    return checks


__all__ = [
    "Check",
    "Environment",
    "Status",
    "check_ble",
    "check_broker",
    "check_clock",
    "check_config",
    "check_daemon",
    "check_disk",
    "check_serial",
    "run_checks",
]
