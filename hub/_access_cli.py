"""`estran hub user|token|admin-reset`: the hub's users and API tokens, managed on the hub's
machine (the data directory is the root of trust: no credential to type). Over HTTP, the
same operations are /api/v1/users and /api/v1/tokens (an admin's token)."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import click

from fleet.cli import _actor, _echo_json, _iso, _open, parse_duration

_DATA = click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("data"),
    envvar="ESTRAN_HUB_DATA",
    show_default=True,
    help="The hub's data directory.",
)


def _read_password(confirm: bool = True) -> str:
    """From the terminal (asked twice), or the first line of standard input."""
    if sys.stdin.isatty():
        return str(click.prompt("password", hide_input=True, confirmation_prompt=confirm))
    return sys.stdin.readline().rstrip("\r\n")


@click.group("user")
@_DATA
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
@_DATA
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
@_DATA
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


__all__ = ["admin_reset", "token", "user"]
