"""`estran hub user|token|admin-reset`: the hub's users and API tokens, managed on the hub's
machine (the data directory is the root of trust: no credential to type). Over HTTP, the
same operations are /api/v1/users and /api/v1/tokens (an admin's token)."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from fleet.cli import _actor, _echo_json, _iso, _open, parse_duration
from fleet.cli_options import hub_data_option, hub_db_option

if TYPE_CHECKING:
    from fleet import Fleet
    from hub.storage import Storage

T = TypeVar("T")


def _read_password(confirm: bool = True) -> str:
    """From the terminal (asked twice), or the first line of standard input."""
    if sys.stdin.isatty():
        return str(click.prompt("password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


@click.group("user")
@hub_data_option
@click.pass_context
def user(ctx: click.Context, data: Path) -> None:
    """Users of the hub: admin, technician (fleet read, commands on their groups), reader
    (the closed datasets granted to them)."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "technician", "reader"]), required=True)
@click.option("--dataset", "datasets", multiple=True, help="A closed dataset granted (repeat).")
@click.option("--group", "groups", multiple=True, help="A fleet group commanded (technician).")
@click.option(
    "--password",
    "with_password",
    is_flag=True,
    help="Set a password (dashboard login): asked, or read from stdin.",
)
@click.pass_context
def user_add(
    ctx: click.Context,
    name: str,
    role: str,
    datasets: tuple[str, ...],
    groups: tuple[str, ...],
    with_password: bool,
) -> None:
    """Add a user. Without --password they have no dashboard login: give them an API token
    (estran hub token create NAME).

    \b
    estran hub user add alice --role reader --dataset water-network
    estran hub user add bob --role technician --group marina --password
    """
    password = _read_password() if with_password else None
    with _open(ctx) as f:
        u = f.accounts.add_user(
            name, role, _actor(), password=password, datasets=datasets, groups=groups
        )
    click.echo(f"user {u.name} added ({u.role})")


@user.command("set")
@click.argument("name")
@click.option("--role", type=click.Choice(["admin", "technician", "reader"]), default=None)
@click.option("--dataset", "datasets", multiple=True, help="Closed datasets granted (replaces).")
@click.option("--no-datasets", is_flag=True, help="Withdraw every dataset grant.")
@click.option("--group", "groups", multiple=True, help="Fleet groups commanded (replaces).")
@click.option("--no-groups", is_flag=True, help="Withdraw every group.")
@click.pass_context
def user_set(
    ctx: click.Context,
    name: str,
    role: str | None,
    datasets: tuple[str, ...],
    no_datasets: bool,
    groups: tuple[str, ...],
    no_groups: bool,
) -> None:
    """Change a user's role, datasets or groups (the tokens they hold follow at once)."""
    with _open(ctx) as f:
        u = f.accounts.update_user(
            name,
            _actor(),
            role=role,
            datasets=() if no_datasets else (datasets or None),
            groups=() if no_groups else (groups or None),
        )
    click.echo(
        f"user {u.name}: {u.role}, datasets {', '.join(u.datasets) or '-'},"
        f" groups {', '.join(u.groups) or '-'}"
    )


@user.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def user_list(ctx: click.Context, as_json: bool) -> None:
    """Users, their role and grants (never a secret)."""
    with _open(ctx) as f:
        rows = f.accounts.users()
    if as_json:
        _echo_json([asdict(u) for u in rows])
        return
    click.echo(f"{'NAME':<20} {'ROLE':<11} {'LOGIN':<6} {'DATASETS':<24} GROUPS")
    for u in rows:
        click.echo(
            f"{u.name:<20} {u.role:<11} {'yes' if u.has_password else 'no':<6} "
            f"{','.join(u.datasets) or '-':<24} {','.join(u.groups) or '-'}"
        )


@user.command("remove")
@click.argument("name")
@click.pass_context
def user_remove(ctx: click.Context, name: str) -> None:
    """Remove a user: their tokens are revoked and their sessions end (the audit keeps the
    name). The last admin cannot be removed."""
    with _open(ctx) as f:
        f.accounts.remove_user(name, _actor())
    click.echo(f"user {name} removed")


@user.command("passwd")
@click.argument("name")
@click.option("--clear", is_flag=True, help="Remove the password (no dashboard login).")
@click.pass_context
def user_passwd(ctx: click.Context, name: str, clear: bool) -> None:
    """Set a user's dashboard password (asked, or read from stdin); their sessions end."""
    password = None if clear else _read_password()
    with _open(ctx) as f:
        f.accounts.set_password(name, password, _actor())
    click.echo(f"password of {name} {'cleared' if clear else 'set'}")


@click.group("token")
@hub_data_option
@click.pass_context
def token(ctx: click.Context, data: Path) -> None:
    """API tokens: hashed, scoped (read, write), expiring, revocable, last use recorded."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data


@token.command("create")
@click.argument("user_name", metavar="USER")
@click.option("--name", default="", help="What it is for (shown in lists).")
@click.option("--ttl", default="90d", show_default=True, help="Lifetime: 1h, 30d... (max 366d).")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(["read", "write"]),
    help="read (GET) and/or write; default: what the role may do.",
)
@click.option("--dataset", "datasets", multiple=True, help="Narrow to these datasets (repeat).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_create(
    ctx: click.Context,
    user_name: str,
    name: str,
    ttl: str,
    scopes: tuple[str, ...],
    datasets: tuple[str, ...],
    as_json: bool,
) -> None:
    """Issue an API token for USER; it is shown once (only a keyed hash is kept).

    \b
    estran hub token create alice --name "water dashboard" --ttl 30d --scope read
    curl -H "Authorization: Bearer eat1...." http://HUB:8080/api/v1/sensors
    """
    seconds = parse_duration(ttl)
    with _open(ctx) as f:
        issued = f.accounts.create_token(
            user_name,
            _actor(),
            name=name,
            ttl_s=seconds,
            scopes=scopes or None,
            datasets=datasets or None,
        )
    if as_json:
        _echo_json({"token": issued.token, **asdict(issued.info)})
        return
    click.echo(issued.token)
    click.echo(
        f"token {issued.info.id} of {user_name}, scopes {','.join(issued.info.scopes)},"
        f" expires {_iso(issued.info.expires_ms)}",
        err=True,
    )


@token.command("list")
@click.option("--user", "user_name", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def token_list(ctx: click.Context, user_name: str | None, as_json: bool) -> None:
    """Tokens (never their secret): state, expiry, last use and from where."""
    with _open(ctx) as f:
        rows = f.accounts.tokens(user_name)
        now = f._now_ms()
    if as_json:
        _echo_json([{**asdict(t), "state": t.state(now)} for t in rows])
        return
    click.echo(f"{'ID':<13} {'USER':<16} {'STATE':<8} {'SCOPES':<11} {'EXPIRES':<21} LAST USE")
    for t in rows:
        used = f"{_iso(t.used_ms)} from {t.used_from}" if t.used_ms else "never"
        click.echo(
            f"{t.id:<13} {t.user:<16} {t.state(now):<8} {','.join(t.scopes):<11} "
            f"{_iso(t.expires_ms):<21} {used}  {t.name}"
        )


@token.command("revoke")
@click.argument("token_id")
@click.pass_context
def token_revoke(ctx: click.Context, token_id: str) -> None:
    """Revoke a token: refused from the next request on."""
    with _open(ctx) as f:
        f.accounts.revoke_token(token_id, _actor())
    click.echo(f"token {token_id} revoked")


@click.command("admin-reset")
@hub_data_option
@click.option("--user", "user_name", default="admin", show_default=True)
@click.pass_context
def admin_reset(ctx: click.Context, data: Path, user_name: str) -> None:
    """A lost admin credential: on the hub's machine, USER becomes (or stays) an admin, every
    token and session of it ends, and a new API token is printed (audited)."""
    ctx.ensure_object(dict)
    ctx.obj["data"] = data
    with _open(ctx) as f:
        issued = f.accounts.reset_admin(_actor(), user_name)
    click.echo(issued.token)
    click.echo(
        f"new API token of {user_name} (the others are revoked), expires"
        f" {_iso(issued.info.expires_ms)}; set a dashboard password with"
        f" `estran hub user passwd {user_name}`",
        err=True,
    )


# -- datasets, sensors, erasure (the hub's storage: --db as for `estran hub run`) ----------------


@contextmanager
def _catalogue(ctx: click.Context) -> Iterator[tuple[Storage, Fleet]]:
    """The hub's storage (migrated) and its registry (for the audit)."""
    from hub._errors import HubError
    from hub.storage import open_storage

    data: Path = ctx.obj["data"]
    if not data.is_dir():
        raise click.ClickException(f"{data}: no hub data directory here (--data DIR)")
    try:
        with open_storage(ctx.obj["db"], data) as storage, _open(ctx) as registry:
            yield storage, registry
    except HubError as e:
        raise click.ClickException(str(e)) from e


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@click.group("dataset")
@hub_data_option
@hub_db_option
@click.pass_context
def dataset(ctx: click.Context, data: Path, db: str) -> None:
    """Datasets: open (served to everyone, with a licence) or closed (readers granted)."""
    ctx.ensure_object(dict)
    ctx.obj.update(data=data, db=db)


@dataset.command("set")
@click.argument("name")
@click.option("--open/--closed", "is_open", required=True, help="Open data, or closed.")
@click.option("--licence", default=None, help="Default: etalab-2.0 (open), restricted (closed).")
@click.option("--description", default="")
@click.option("--steward", default="", help="Who answers for it (a service, a person).")
@click.pass_context
def dataset_set(
    ctx: click.Context,
    name: str,
    is_open: bool,
    licence: str | None,
    description: str,
    steward: str,
) -> None:
    """Create or replace a dataset (opening one that holds a personal sensor is refused).

    \b
    estran hub dataset set parks --open --steward "Parks department"
    estran hub dataset set water-network --closed --description "water meters"
    """
    from fleet import check_name
    from hub._data_api import LICENCE_ID
    from hub.storage import ETALAB, Dataset

    check = _fleet_checked(lambda: check_name(name, "dataset name"))
    if licence is not None and not re.fullmatch(LICENCE_ID, licence):
        raise click.BadParameter(
            "an identifier such as etalab-2.0, ODbL-1.0 or LicenseRef-city-1 (letters, digits, "
            ". + _ -; at most 64)",
            param_hint="--licence",
        )
    lic = licence or (ETALAB if is_open else "restricted")
    with _catalogue(ctx) as (storage, registry):
        saved = storage.put_dataset(
            Dataset(check, is_open, lic, description, steward), _actor(), _now_ms()
        )
        registry.record(_actor(), "dataset.put", name, open=saved.open, licence=saved.licence)
    click.echo(f"dataset {saved.name}: {'open' if saved.open else 'closed'}, {saved.licence}")


@dataset.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def dataset_list(ctx: click.Context, as_json: bool) -> None:
    """Datasets and how many sensors each holds."""
    with _catalogue(ctx) as (storage, _):
        rows = storage.datasets()
        counts: dict[str, int] = {}
        for e in storage.sensor_catalogue():
            key = e.dataset or "-"
            counts[key] = counts.get(key, 0) + 1
    if as_json:
        _echo_json([{**asdict(d), "sensors": counts.get(d.name, 0)} for d in rows])
        return
    click.echo(f"{'NAME':<24} {'ACCESS':<7} {'LICENCE':<12} {'SENSORS':>7}  STEWARD")
    for d in rows:
        click.echo(
            f"{d.name:<24} {'open' if d.open else 'closed':<7} {d.licence:<12} "
            f"{counts.get(d.name, 0):>7}  {d.steward}"
        )
    if counts.get("-"):
        click.echo(f"{'(in no dataset: admin only)':<45} {counts['-']:>7}")


@dataset.command("remove")
@click.argument("name")
@click.pass_context
def dataset_remove(ctx: click.Context, name: str) -> None:
    """Remove a dataset: its sensors are in none afterwards (closed, admin only)."""
    with _catalogue(ctx) as (storage, registry):
        moved = _hub_checked(lambda: storage.remove_dataset(name))
        registry.record(_actor(), "dataset.remove", name, sensors=moved)
    click.echo(f"dataset {name} removed ({moved} sensors now in none)")


@click.group("sensor")
@hub_data_option
@hub_db_option
@click.pass_context
def sensor(ctx: click.Context, data: Path, db: str) -> None:
    """Sensor metadata: dataset, location, site, description, kind, personal."""
    ctx.ensure_object(dict)
    ctx.obj.update(data=data, db=db)


@sensor.command("set")
@click.argument("sensor_id")
@click.option("--dataset", "dataset_name", default=None, help="Its dataset.")
@click.option("--no-dataset", is_flag=True, help="In no dataset (closed: admin only).")
@click.option("--lon", type=float, default=None, help="WGS84 longitude.")
@click.option("--lat", type=float, default=None, help="WGS84 latitude.")
@click.option("--no-location", is_flag=True)
@click.option("--site", default=None)
@click.option("--description", default=None)
@click.option("--kind", default=None, help="e.g. electricity-meter, soil, bin, berth.")
@click.option(
    "--personal/--not-personal",
    default=None,
    help="Personal data (a resident's own meter): never in an open dataset.",
)
@click.pass_context
def sensor_set(
    ctx: click.Context,
    sensor_id: str,
    dataset_name: str | None,
    no_dataset: bool,
    lon: float | None,
    lat: float | None,
    no_location: bool,
    site: str | None,
    description: str | None,
    kind: str | None,
    personal: bool | None,
) -> None:
    """Change what is given of a sensor's metadata (the rest stays).

    \b
    estran hub sensor set townhall-linky --dataset energy --lon 5.3698 --lat 43.2965 --kind electricity-meter
    estran hub sensor set flat-12-water --dataset water-network --personal
    """
    from dataclasses import replace

    if (lon is None) != (lat is None):
        raise click.BadParameter("--lon and --lat go together")
    with _catalogue(ctx) as (storage, registry):
        meta = storage.sensor_meta(sensor_id)
        changes: dict[str, object] = {}
        if no_dataset or dataset_name is not None:
            changes["dataset"] = None if no_dataset else dataset_name
        if no_location or lon is not None:
            changes["location"] = None if no_location or lon is None or lat is None else (lon, lat)
        for key, value in (("site", site), ("description", description), ("kind", kind)):
            if value is not None:
                changes[key] = value
        if personal is not None:
            changes["personal"] = personal
        saved = _hub_checked(
            lambda: storage.put_sensor_meta(replace(meta, **changes), _actor(), _now_ms())  # type: ignore[arg-type]
        )
        registry.record(
            _actor(), "sensor.meta", sensor_id, dataset=saved.dataset, personal=saved.personal
        )
    where = "-" if saved.location is None else f"{saved.location[1]:.5f},{saved.location[0]:.5f}"
    click.echo(
        f"{saved.sensor}: dataset {saved.dataset or '- (closed)'}, at {where}, site "
        f"{saved.site or '-'}{', personal' if saved.personal else ''}"
    )


@sensor.command("list")
@click.option("--dataset", "dataset_name", default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sensor_list(ctx: click.Context, dataset_name: str | None, as_json: bool) -> None:
    """Every sensor the hub knows, with its dataset and location."""
    with _catalogue(ctx) as (storage, _):
        rows = storage.sensor_catalogue(dataset=dataset_name)
    if as_json:
        _echo_json([asdict(e) for e in rows])
        return
    click.echo(f"{'SENSOR':<28} {'DATASET':<20} {'ACCESS':<7} {'LAT,LON':<22} SITE")
    for e in rows:
        where = "-" if e.location is None else f"{e.location[1]:.5f},{e.location[0]:.5f}"
        access = "open" if e.open else "closed"
        personal = "  (personal)" if e.personal else ""
        click.echo(
            f"{e.sensor:<28} {e.dataset or '-':<20} {access:<7} {where:<22} "
            f"{e.site or '-'}{personal}"
        )


@click.command("erase")
@hub_data_option
@hub_db_option
@click.option("--sensor", "sensors", multiple=True, help="A sensor (repeat).")
@click.option(
    "--site", default=None, help="Every sensor of this site (estran hub sensor set --site)."
)
@click.option("--from", "from_", required=True, help="Epoch ms or ISO 8601 (inclusive).")
@click.option("--to", required=True, help="Epoch ms or ISO 8601 (exclusive).")
@click.option("--reason", default="", help="Why (kept in the audit and the erasure record).")
@click.option("--yes", is_flag=True, help="Do not ask.")
@click.pass_context
def erase(
    ctx: click.Context,
    data: Path,
    db: str,
    sensors: tuple[str, ...],
    site: str | None,
    from_: str,
    to: str,
    reason: str,
    yes: bool,
) -> None:
    """Delete readings on request (GDPR): a sensor's or a site's, over [FROM, TO), from the
    hub's database; audited. Readings a gateway resends in that range are dropped at ingest.

    \b
    estran hub erase --sensor flat-12-water --from 2026-01-01 --to 2026-07-01 --reason "request 2026-114"
    """
    from fastapi import HTTPException

    from hub._api import parse_time

    ctx.ensure_object(dict)
    ctx.obj.update(data=data, db=db)
    if bool(sensors) == bool(site):
        raise click.UsageError("give --sensor or --site")
    try:
        from_ms, to_ms = parse_time(from_, "--from"), parse_time(to, "--to")
    except HTTPException as e:
        raise click.BadParameter(str(e.detail)) from e
    if from_ms is None or to_ms is None:  # an empty string
        raise click.BadParameter(f"{'--from' if from_ms is None else '--to'}: required")
    with _catalogue(ctx) as (storage, registry):
        targets = list(sensors) or storage.site_sensors(site or "")
        if not targets:
            raise click.ClickException(f"no sensor at site {site!r}")
        if not yes:
            click.confirm(
                f"delete the readings of {', '.join(targets)} from {from_} to {to}?", abort=True
            )
        deleted = _hub_checked(
            lambda: storage.erase_readings(targets, from_ms, to_ms, _actor(), _now_ms(), reason)
        )
        registry.record(
            _actor(),
            "readings.erase",
            targets[0] if sensors else f"site:{site}",
            sensors=targets[:100],
            from_ms=from_ms,
            to_ms=to_ms,
            deleted=deleted,
            reason=reason,
        )
    click.echo(f"{deleted} readings deleted ({', '.join(targets)})")


def _hub_checked(fn: Callable[[], T]) -> T:
    from hub._errors import HubError

    try:
        return fn()
    except HubError as e:
        raise click.ClickException(str(e)) from e


def _fleet_checked(fn: Callable[[], T]) -> T:
    from fleet import FleetError

    try:
        return fn()
    except FleetError as e:
        raise click.BadParameter(str(e)) from e


__all__ = ["admin_reset", "dataset", "erase", "sensor", "token", "user"]
