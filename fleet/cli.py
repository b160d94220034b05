"""`estran fleet`: commands of the fleet package.

They work on the hub's data directory directly (`--data`, the same as `estran hub run`, or
$ESTRAN_HUB_DATA), on the hub's machine, as the hub's user: no credential to type, and they
work while the hub runs (the registry is SQLite in WAL mode; the hub sees every change within
a second: broker access, configurations to publish). From elsewhere, the same operations are
on the hub's HTTP API with the admin credential (docs/fleet.md).
"""

from __future__ import annotations

import getpass
import json
import re
import sys
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fleet.cli_options import hub_data_option
from protocols import signed

if TYPE_CHECKING:
    from fleet import Fleet, Gateway

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)?\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """ "90s", "30m", "1h", "7d" (seconds when no unit)."""
    match = _DURATION.match(text)
    if match is None:
        raise click.BadParameter(f"{text!r}: expected a duration such as 30m, 1h, 7d")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _iso(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "admin"


@contextmanager
def _open(ctx: click.Context) -> Iterator[Fleet]:
    from fleet import Fleet, FleetError

    data: Path = ctx.obj["data"]
    if not data.is_dir():
        raise click.ClickException(f"{data}: no hub data directory here (--data DIR)")
    try:
        with Fleet(data) as f:
            yield f
    except FleetError as e:
        raise click.ClickException(str(e)) from e


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True))


class _FleetGroup(click.Group):
    """`release`, `rollout`, `inventory` and `hostvars` live in fleet/updates_cli.py, imported
    when used."""

    LATER = ("hostvars", "inventory", "release", "rollout")

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.LATER})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LATER:
            from fleet import updates_cli

            command = getattr(updates_cli, cmd_name.replace("-", "_") + "_cmd")
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_FleetGroup)
@hub_data_option
@click.pass_context
def fleet(ctx: click.Context, data: Path) -> None:
    """The fleet: tokens, gateways, groups, signed configuration."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data


# -- tokens ----------------------------------------------------------------------------------


@fleet.group("token")
def token() -> None:
    """Enrollment tokens: one use, expiring, scoped to a group."""


@token.command("create")
@click.option("--group", required=True, help="The group the gateway joins.")
@click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30m, 1h, 7d...")
@click.option("--site", default=None, help="Where the gateway goes (recorded with it).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_create(ctx: click.Context, group: str, ttl: str, site: str | None, as_json: bool) -> None:
    """Issue a token; it is shown once (only its hash is kept).

    \b
    estran fleet token create --group marina --ttl 1h
    """
    seconds = parse_duration(ttl)
    with _open(ctx) as f:
        issued = f.create_token(group, seconds, _actor(), site)
    if as_json:
        _echo_json(
            {
                "token": issued.token,
                "id": issued.info.id,
                "group": group,
                "expires_ms": issued.info.expires_ms,
                "hub_fingerprint": issued.token.rsplit(".", 1)[1],
            }
        )
        return
    click.echo(issued.token)
    click.echo(
        f"one use, group {group}, expires {_iso(issued.info.expires_ms)}; on the gateway:\n"
        f"  estran edge enroll --hub https://HUB --token {issued.token}",
        err=True,
    )


@token.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_list(ctx: click.Context, as_json: bool) -> None:
    """Tokens issued (never their secret): used by which gateway, or when they expire."""
    with _open(ctx) as f:
        rows = f.tokens()
    if as_json:
        _echo_json([asdict(r) for r in rows])
        return
    for r in rows:
        used = (
            f"used by {r.gateway} {_iso(r.used_ms)}"
            if r.used_ms
            else f"expires {_iso(r.expires_ms)}"
        )
        click.echo(f"{r.id}  {r.group:<12} {r.created_by:<10} {used}")


# -- gateways ----------------------------------------------------------------------------------


@fleet.command("gateways")
@click.option("--group", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def gateways(ctx: click.Context, group: str | None, as_json: bool) -> None:
    """The registry: each gateway, its desired and applied configuration versions, drift."""
    with _open(ctx) as f:
        rows = f.gateways(group)
    if as_json:
        _echo_json([g.as_dict() for g in rows])
        return
    if not rows:
        click.echo("no gateway enrolled (estran fleet token create --group G)")
        return
    click.echo(
        f"{'ID':<20} {'GROUP':<12} {'STATE':<8} {'SOFTWARE':<10} {'DESIRED':>7} {'APPLIED':>7}  "
        "OUTCOME"
    )
    for g in rows:
        flag = "  DRIFT" if g.drift else ""
        outcome = g.outcome or "-"
        if g.reason and g.outcome != "applied":
            outcome += f" ({g.reason})"
        if g.restart_pending:
            outcome += f", restart pending ({', '.join(g.restart_pending)})"
        click.echo(
            f"{g.id:<20} {g.group:<12} {g.state:<8} {g.software or '-':<10} "
            f"{g.desired_version or '-':>7} "
            f"{g.applied_version or '-':>7}  {outcome}{flag}{_sources_line(g)}"
        )


def _sources_line(g: Gateway) -> str:
    """Each source that is not ok, on the gateway's line: '  SOURCES 1/3 down: linky (...)'."""
    if not g.sources:
        return ""
    bad = [s for s in g.sources if s.status != "ok"]
    if not bad:
        return f"  sources {len(g.sources)} ok"
    return f"  sources {len(g.sources) - len(bad)}/{len(g.sources)} ok; " + "; ".join(
        f"{s.name} {s.status}" + (f" ({s.detail})" if s.detail else "") for s in bad
    )


@fleet.command("revoke")
@click.argument("gateway_id")
@click.pass_context
def revoke(ctx: click.Context, gateway_id: str) -> None:
    """Revoke a gateway: its broker access ends within a second (the hub applies it)."""
    with _open(ctx) as f:
        f.revoke(gateway_id, _actor())
    click.echo(f"{gateway_id} revoked")


@fleet.command("cmd")
@click.argument("gateway_id")
@click.argument("name", type=click.Choice(signed.COMMANDS))
@click.option("--arg", "args", multiple=True, help="KEY=VALUE (repeatable)")
@click.option("--ttl", default="1h", show_default=True)
@click.pass_context
def command(
    ctx: click.Context, gateway_id: str, name: str, args: tuple[str, ...], ttl: str
) -> None:
    """Send a signed command to one gateway: reload (its file), status, rescan (restart its
    sources), flush (commit its buffer, send its backlog now), reboot (restart the daemon,
    not the machine)."""
    parsed = dict(_assignment(a) for a in args)
    with _open(ctx) as f:
        seq = f.command(gateway_id, name, _actor(), parsed, parse_duration(ttl))
    click.echo(f"{name} sent to {gateway_id} (seq {seq})")


@fleet.command("audit")
@click.option("--limit", default=50, show_default=True)
@click.option("--target", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def audit(ctx: click.Context, limit: int, target: str | None, as_json: bool) -> None:
    """Who changed what, when, and what each gateway answered."""
    with _open(ctx) as f:
        rows = f.audit(limit, target)
    if as_json:
        _echo_json([asdict(e) for e in rows])
        return
    for e in rows:
        detail = " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(e.detail.items()))
        where = f"  from {e.remote}" if e.remote else ""
        click.echo(f"{_iso(e.ts_ms)}  {e.actor:<16} {e.action:<16} {e.target:<20} {detail}{where}")


# -- groups ------------------------------------------------------------------------------------


@fleet.group("group")
def group() -> None:
    """Groups of gateways (a token enrolls into one; configuration layers per group)."""


@group.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.pass_context
def group_create(ctx: click.Context, name: str, description: str) -> None:
    with _open(ctx) as f:
        f.create_group(name, _actor(), description)
    click.echo(f"group {name} created")


@group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def group_list(ctx: click.Context, as_json: bool) -> None:
    with _open(ctx) as f:
        rows = f.groups()
    if as_json:
        _echo_json([asdict(g) for g in rows])
        return
    for g in rows:
        click.echo(f"{g.name:<16} {g.gateways:>4} gateway(s)  {g.description}")


# -- configuration -------------------------------------------------------------------------------


@fleet.group("config")
def config() -> None:
    """Layered desired configuration: fleet, then group, then gateway (docs/fleet.md)."""


def _scope(
    group_name: str | None, gateway: str | None, fleet_wide: bool | None = None
) -> tuple[str, str | None]:
    """The layer named by the options. `fleet_wide` is None where the fleet layer is the
    default (reading); a change must name it with --fleet, since it reaches every gateway."""
    if sum(bool(x) for x in (group_name, gateway, fleet_wide)) > 1:
        raise click.UsageError("one of --fleet, --group or --gateway")
    if gateway:
        return "gateway", gateway
    if group_name:
        return "group", group_name
    if fleet_wide is False:
        raise click.UsageError(
            "say which layer to change: --fleet (every gateway), --group NAME or --gateway ID"
        )
    return "fleet", None


def _assignment(text: str) -> tuple[str, Any]:
    """PATH=VALUE with VALUE in TOML syntax (1, 2.5, true, "text", [1, 2], {a = 1}); a bare
    word is a string; `null` deletes the inherited value."""
    path, sep, raw = text.partition("=")
    path = path.strip()
    if not sep or not path or any(not part for part in path.split(".")):
        raise click.BadParameter(f'{text!r}: expected PATH=VALUE, e.g. buffer.quota="1 GiB"')
    raw = raw.strip()
    if raw == "null":
        return path, None
    try:
        return path, tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return path, raw


def _load_file(path: Path) -> dict[str, Any]:
    text = path.read_text()
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as e:
        raise click.ClickException(f"{path}: {e}") from e
    if not isinstance(doc, dict):
        raise click.ClickException(f"{path}: not a table")
    return doc


@config.command("show")
@click.option("--group", "group_name", default=None)
@click.option("--gateway", default=None)
@click.option("--layer", is_flag=True, help="The layer alone, not the merged result.")
@click.pass_context
def config_show(
    ctx: click.Context, group_name: str | None, gateway: str | None, layer: bool
) -> None:
    """The effective document (fleet + group + gateway), or one layer (JSON)."""
    scope, name = _scope(group_name, gateway)
    with _open(ctx) as f:
        if layer:
            doc = f.layer(scope, name)  # type: ignore[arg-type]
        elif gateway:
            doc = f.effective(gateway=gateway)
        else:
            doc = f.effective(group=group_name)
    _echo_json(doc)


@config.command("set")
@click.option("--fleet", "fleet_wide", is_flag=True, help="The fleet-wide layer (every gateway).")
@click.option("--group", "group_name", default=None)
@click.option("--gateway", default=None)
@click.option("--file", "file_", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Replace the layer with this TOML or JSON file.")  # fmt: skip
@click.option("--unset", multiple=True, help="PATH to inherit again from the layer above.")
@click.argument("assignments", nargs=-1)
@click.pass_context
def config_set(
    ctx: click.Context,
    fleet_wide: bool,
    group_name: str | None,
    gateway: str | None,
    file_: Path | None,
    unset: tuple[str, ...],
    assignments: tuple[str, ...],
) -> None:
    """Change a layer; the schema is checked, then every gateway it reaches gets a new signed
    version (published by the hub within a second).

    \b
    estran fleet config set --group marina buffer.quota='"2 GiB"' uplink.backlog_rate=5000
    estran fleet config set --gateway marina-003 daemon=null        (delete the inherited table)
    estran fleet config set --group parks --file parks.toml
    estran fleet config set --fleet daemon.log_level='"info"'      (every gateway)
    """
    from fleet import ConfigRejected, set_path, show_diff, unset_path
    from fleet import diff as diff_docs

    scope, name = _scope(group_name, gateway, fleet_wide)
    with _open(ctx) as f:
        old = f.layer(scope, name)  # type: ignore[arg-type]
        doc = _load_file(file_) if file_ is not None else dict(old)
        for text in assignments:
            path, value = _assignment(text)
            doc = set_path(doc, path, value)
        for path in unset:
            doc = unset_path(doc, path)
        try:
            changed = f.set_layer(scope, name, doc, _actor())  # type: ignore[arg-type]
        except ConfigRejected as e:
            raise click.ClickException(str(e)) from e
    text = show_diff(diff_docs(old, doc))
    click.echo(text or "layer unchanged")
    if changed:
        for g in changed:
            click.echo(f"{g.id}: version {g.desired_version} to publish")
    else:
        click.echo("no gateway's configuration changed")


@config.command("diff")
@click.option("--group", "group_name", default=None)
@click.option("--gateway", default=None)
@click.pass_context
def config_diff(ctx: click.Context, group_name: str | None, gateway: str | None) -> None:
    """A gateway: what it should run against what it reported running. A group: what its
    layer changes over the fleet's."""
    from fleet import NotFound, show_diff
    from fleet import diff as diff_docs

    with _open(ctx) as f:
        if gateway:
            g = f.gateway(gateway)
            version, desired = f.desired(gateway)
            applied: dict[str, object] = {}
            if g.applied_version:
                with suppress(NotFound):
                    applied = f.desired(gateway, g.applied_version)[1]
            click.echo(
                f"# {gateway}: applied {g.applied_version or 'nothing'} -> desired {version}"
            )
            text = show_diff(diff_docs(applied, desired))
        else:
            base = f.effective()
            text = show_diff(diff_docs(base, f.effective(group=group_name)))
    click.echo(text or "no difference")


# -- keys and broker -------------------------------------------------------------------------------


@fleet.group("keys")
def keys() -> None:
    """The hub's signing keys (rotation: add, let gateways report, retire the old one)."""


@keys.command("list")
@click.pass_context
def keys_list(ctx: click.Context) -> None:
    with _open(ctx) as f:
        active = set(f.keys.active_ids())
        for kid in f.keys.all_ids():
            click.echo(f"{kid}  {'active' if kid in active else 'retired'}")


@keys.command("add")
@click.pass_context
def keys_add(ctx: click.Context) -> None:
    with _open(ctx) as f:
        kid = f.add_key(_actor())
    click.echo(f"{kid} added; every gateway gets a configuration that trusts it")


@keys.command("retire")
@click.argument("key_id")
@click.pass_context
def keys_retire(ctx: click.Context, key_id: str) -> None:
    with _open(ctx) as f:
        f.retire_key(key_id, _actor())
    click.echo(f"{key_id} retired")


@fleet.group("tls")
def tls() -> None:
    """A demo CA: TLS for the hub's HTTP API and MQTT without a public certificate."""


@tls.command("init")
@click.option(
    "--host", "hosts", multiple=True, required=True, help="Name or address of the hub (repeatable)."
)
@click.pass_context
def tls_init(ctx: click.Context, hosts: tuple[str, ...]) -> None:
    """Make the CA (kept if it exists) and a server certificate for HOSTs.

    \b
    estran fleet tls init --host hub.example --host 192.0.2.10
    estran hub run --https --mqtt-tls-listen 0.0.0.0:8883 --public-broker mqtts://hub.example:8883
    estran edge enroll --hub https://hub.example:8080 --ca hub-ca.crt --token ...
    """
    from fleet import init_tls

    with _open(ctx) as f:
        files = init_tls(f.directory / "tls", list(hosts))
    click.echo(f"CA certificate   {files.ca_cert}   (copy it to the gateways: --ca)")
    click.echo(f"CA fingerprint   sha256 {files.ca_fingerprint}")
    click.echo(f"server           {files.server_cert} for {', '.join(hosts)}")


@fleet.group("broker")
def broker() -> None:
    """Access control files for an external Mosquitto."""


@broker.command("sync")
@click.option("--mosquitto-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--pid-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Mosquitto's pid file: SIGHUP it when the files change.")  # fmt: skip
@click.pass_context
def broker_sync(ctx: click.Context, mosquitto_dir: Path, pid_file: Path | None) -> None:
    """Write `passwd` and `acl` from the registry (the hub does it by itself when started
    with --mosquitto-dir)."""
    from fleet import reload_mosquitto, write_mosquitto_files

    with _open(ctx) as f:
        f.hub_credentials()
        changed = write_mosquitto_files(mosquitto_dir, f.broker_accounts())
    click.echo(f"{mosquitto_dir}: {'rewritten' if changed else 'up to date'}")
    if changed and pid_file is not None:
        click.echo(f"mosquitto {reload_mosquitto(pid_file)} reloaded")


@broker.command("mosquitto-conf")
@click.option("--mosquitto-dir", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--port", default=1883, show_default=True)
@click.option("--bind", default="127.0.0.1", show_default=True)
def broker_conf(mosquitto_dir: Path, port: int, bind: str) -> None:
    """Print a minimal mosquitto.conf using the generated files."""
    from fleet import mosquitto_conf

    sys.stdout.write(mosquitto_conf(mosquitto_dir.resolve(), port, bind))
