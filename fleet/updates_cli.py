"""`estran fleet release|rollout|inventory|hostvars`: software updates of the fleet
(docs/updates.md).

    estran fleet release build [--out dist] [--wheelhouse W.tar]      # in the repository
    estran fleet --data HUB release add dist/estran-release-1.0.1.tar  # on the hub: checked, signed
    estran fleet release add --hub https://hub.example --token-file T dist/estran-release-1.0.1.tar
    estran fleet --data HUB rollout start 1.0.1 --rigs group:rigs --canary 10%
    estran fleet --data HUB rollout status [ID] [--watch]
    estran fleet --data HUB rollout pause|resume|cancel ID
    estran fleet --data HUB inventory --list                           # Ansible's JSON inventory
"""

from __future__ import annotations

import json
import sys
import time
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fleet.cli import _actor, _echo_json, _iso, _open

if TYPE_CHECKING:
    from rich.console import RenderableType

    from fleet import Fleet
    from fleet._rollouts import Rollout

_STYLE = {
    "pending": "dim",
    "running": "bold cyan",
    "updated": "green",
    "unchanged": "green",
    "rolled_back": "bold red",
    "failed": "bold red",
    "deferred": "yellow",
    "unreachable": "yellow",
    "cancelled": "dim",
}
FINAL_STATES = ("done", "stopped", "cancelled", "failed")


def _repo_root() -> Path:
    here = Path.cwd()
    for path in (here, *here.parents):
        if (path / "playbooks" / "update.yml").is_file() and (path / "pyproject.toml").is_file():
            return path
    raise click.ClickException("not inside the estran repository (--repo DIR)")


# -- releases ------------------------------------------------------------------------------------


@click.group("release")
def release_cmd() -> None:
    """Release bundles: build (in the repository), add (on the hub), list, remove."""


@release_cmd.command("build")
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="The repository (default: the one around the current directory).")  # fmt: skip
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("dist"),
              show_default=True)  # fmt: skip
@click.option("--wheel", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A wheel built already (default: pip wheel of the repository).")  # fmt: skip
@click.option("--wheelhouse", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A .tar of the dependency wheels for the gateways' platform.")  # fmt: skip
def release_build(
    repo: Path | None, out: Path, wheel: Path | None, wheelhouse: Path | None
) -> None:
    """Build a release bundle: the wheel, the playbooks and a manifest of their checksums.

    \b
    estran fleet release build --wheelhouse wheelhouse-1.0.1.tar
    """
    from fleet import FleetError
    from fleet._releases import build_bundle

    try:
        bundle = build_bundle(out, repo=repo or _repo_root(), wheel=wheel, wheelhouse=wheelhouse)
    except FleetError as e:
        raise click.ClickException(str(e)) from e
    click.echo(str(bundle))


@release_cmd.command("add")
@click.argument("bundle", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--hub", "hub_url", envvar="ESTRAN_HUB_URL", default=None,
              help="Upload to this hub over HTTP (admin), e.g. https://hub.example; without it, "
                   "the hub's data directory on this machine (--data).")  # fmt: skip
@click.option("--token", envvar="ESTRAN_HUB_TOKEN", default=None,
              help="An admin's token (or ESTRAN_HUB_TOKEN; --token-file).")  # fmt: skip
@click.option("--token-file", envvar="ESTRAN_HUB_TOKEN_FILE", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path))  # fmt: skip
@click.option("--ca", envvar="ESTRAN_HUB_CA", default=None,
              type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="The CA of a hub with a private certificate (estran fleet tls init).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def release_add(
    ctx: click.Context, bundle: Path, hub_url: str | None, token: str | None,
    token_file: Path | None, ca: Path | None, as_json: bool,
) -> None:  # fmt: skip
    """Add a bundle to the hub: every file checked against its manifest, the manifest signed.
    On the hub's machine (--data), or from anywhere with --hub URL and an admin's token
    (POST /api/v1/fleet/releases: the same checks)."""
    if hub_url:
        if token_file is not None:
            token = token_file.read_text().strip()
        if not token:
            raise click.ClickException("--hub needs an admin's token: --token or --token-file")
        value = upload_release(hub_url, bundle, token, ca)
    else:
        with _open(ctx) as f:
            value = f.add_release(bundle, _actor()).as_dict()
    if as_json:
        _echo_json(value)
    else:
        size = float(str(value.get("size", 0)))
        click.echo(
            f"release {value['version']}: {value['files']} files, {size / 1e6:.1f} MB, signed"
        )


def upload_release(hub_url: str, bundle: Path, token: str, ca: Path | None) -> dict[str, Any]:
    """POST the bundle to the hub (streamed from the file); the release it answers, or a
    ClickException saying the hub's reason."""
    import http.client
    import ssl
    import urllib.parse

    url = urllib.parse.urlsplit(hub_url.rstrip("/") + "/api/v1/fleet/releases")
    if url.scheme not in ("http", "https") or not url.hostname:
        raise click.ClickException(f"{hub_url}: not an http(s):// address")
    conn: http.client.HTTPConnection
    if url.scheme == "https":
        context = ssl.create_default_context(cafile=str(ca) if ca else None)
        conn = http.client.HTTPSConnection(url.hostname, url.port, context=context, timeout=600)
    else:
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
    try:
        with bundle.open("rb") as body:
            conn.request(
                "POST", url.path, body=body,
                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-tar",
                         "Content-Length": str(bundle.stat().st_size)},
            )  # fmt: skip
            response = conn.getresponse()
            data = response.read(1 << 20)
    except (OSError, http.client.HTTPException) as e:
        raise click.ClickException(f"{hub_url}: {e}") from e
    finally:
        conn.close()
    try:
        value = json.loads(data)
    except ValueError:
        value = {"detail": data[:300].decode(errors="replace")}
    if response.status in (200, 201) and isinstance(value, dict):
        return value
    detail = value.get("detail") if isinstance(value, dict) else value
    if isinstance(detail, dict):
        detail = f"{detail.get('reason')}: {detail.get('message')}"
    raise click.ClickException(f"the hub refused the bundle ({response.status}): {detail}")


@release_cmd.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def release_list(ctx: click.Context, as_json: bool) -> None:
    with _open(ctx) as f:
        rows = f.releases()
    if as_json:
        _echo_json([r.as_dict() for r in rows])
        return
    for r in rows:
        click.echo(f"{r.version:<16} {r.files:>4} files {r.size / 1e6:>8.1f} MB  "
                   f"added {_iso(r.added_ms)} by {r.added_by}  {r.source}")  # fmt: skip


@release_cmd.command("remove")
@click.argument("version")
@click.pass_context
def release_remove(ctx: click.Context, version: str) -> None:
    with _open(ctx) as f:
        f.remove_release(version, _actor())
    click.echo(f"release {version} removed")


# -- rollouts ------------------------------------------------------------------------------------


def rollout_table(r: Rollout, *, limit: int = 60) -> RenderableType:
    """The rollout as a rich table: a progress line, then one line per gateway."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    total = len(r.gateways)
    counts = r.counts()
    ended = r.finished + counts["unreachable"] + counts["cancelled"]
    head = Text.assemble(
        (f"rollout {r.id}", "bold"),
        f"  release {r.release}  {r.mode}  ",
        (r.state, "bold green" if r.state == "done" else "bold yellow"),
        f"  {r.finished}/{total} finished, {r.failures} failed, "
        f"{counts['deferred'] + counts['unreachable']} unreachable",
    )
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("gateway", "wave", "state", "step / reason", "time"):
        table.add_column(col, no_wrap=col != "step / reason")
    now = time.time() * 1000
    shown = sorted(r.gateways, key=lambda g: (g.state in ("pending", "cancelled"), g.wave))
    for g in shown[:limit]:
        seconds = g.seconds
        if seconds is None and g.started_ms is not None and g.state == "running":
            seconds = (now - g.started_ms) / 1000
        table.add_row(
            g.gateway,
            g.wave_name,
            Text(g.state, _STYLE.get(g.state, "")),
            (g.reason or g.step)[:100],
            "" if seconds is None else f"{seconds:.0f}s",
        )
    parts: list[RenderableType] = [head, ProgressBar(total=max(total, 1), completed=ended), table]
    if len(shown) > limit:
        parts.append(Text(f"... and {len(shown) - limit} more (--json shows all)", "dim"))
    if r.reason:
        parts.append(Text(r.reason, "bold"))
    return Group(*parts)


def _watch(f: Fleet, rid: int, interval: float = 0.5) -> Rollout:
    from rich.console import Console
    from rich.live import Live

    console = Console()
    r = f.rollout(rid)
    with Live(rollout_table(r), console=console, refresh_per_second=4, transient=False) as live:
        while r.state not in FINAL_STATES:
            time.sleep(interval)
            r = f.rollout(rid)
            live.update(rollout_table(r))
    return r


@click.group("rollout")
def rollout_cmd() -> None:
    """Roll a release out in waves: test rigs, a canary share, the rest."""


@rollout_cmd.command("start")
@click.argument("version")
@click.option("--target", "selector", default="all", show_default=True,
              help="Gateways: all, group:NAME, an id; several joined by commas.")  # fmt: skip
@click.option("--rigs", default=None, help="The test rigs among them (first wave): same syntax.")
@click.option("--canary", default="10%", show_default=True, help="The canary wave: 10% or a count.")
@click.option("--max-failures", default="0", show_default=True,
              help="Failed gateways tolerated (a count, or a share: 5%); more stops the rollout.")  # fmt: skip
@click.option("--mode", type=click.Choice(["push", "pull"]), default="push", show_default=True)
@click.option("--batch", type=int, default=10, show_default=True,
              help="Gateways updated at a time (parallel).")  # fmt: skip
@click.option("--retries", type=int, default=3, show_default=True,
              help="Tries again of unreachable gateways.")  # fmt: skip
@click.option("--retry-interval", "retry_s", type=float, default=60.0, show_default=True)
@click.option("--hub-url", envvar="ESTRAN_HUB_URL", default="",
              help="Where gateways reach the hub (pull mode: the bundle's URLs).")  # fmt: skip
@click.option("--detach", is_flag=True, help="Leave it to the hub's worker; print its id.")
@click.option("--json", "as_json", is_flag=True, help="At the end: the rollout as JSON.")
@click.pass_context
def rollout_start(
    ctx: click.Context,
    version: str,
    selector: str,
    rigs: str | None,
    canary: str,
    max_failures: str,
    mode: str,
    batch: int,
    retries: int,
    retry_s: float,
    hub_url: str,
    detach: bool,
    as_json: bool,
) -> None:
    """Start a rollout and run it here, showing its progress (exit status 1 when it does
    not end `done`); --detach leaves it to the running hub.

    \b
    estran fleet rollout start 1.0.1 --rigs group:rigs --canary 10% --max-failures 0
    """
    from fleet._rollout_run import RolloutRunner, default_executors, runner_name

    with _open(ctx) as f:
        name = None if detach else runner_name("cli")
        r = f.create_rollout(
            version, selector, _actor(), rigs=rigs, canary=canary, mode=mode,  # type: ignore[arg-type]
            max_failures=max_failures, batch=batch, retries=retries, retry_s=retry_s,
            runner=name,
        )  # fmt: skip
        waves = ", ".join(f"{n} {len(g)}" for n, g in r.waves)
        click.echo(f"rollout {r.id}: {version} to {len(r.gateways)} gateways ({waves})", err=True)
        if detach:
            click.echo(str(r.id))
            return
        runner = RolloutRunner(f, default_executors(f), hub_url=hub_url, name=name)
        if as_json or not sys.stdout.isatty():
            r = runner.run(r.id)
        else:
            import threading

            result: list[Rollout] = []
            worker = threading.Thread(target=lambda: result.append(runner.run(r.id)), daemon=True)
            worker.start()
            try:
                _watch(f, r.id)
            except KeyboardInterrupt:
                runner.shutdown.set()
                click.echo("left running: `estran fleet rollout status` / `cancel`", err=True)
            worker.join()
            r = result[0] if result else f.rollout(r.id)
    _finish(r, as_json)


def _finish(r: Rollout, as_json: bool) -> None:
    if as_json:
        _echo_json(r.as_dict())
    else:
        click.echo(f"rollout {r.id}: {r.state}: {r.reason}")
    if r.state not in ("done", "running", "paused"):
        sys.exit(1)


@rollout_cmd.command("status")
@click.argument("rollout_id", type=int, required=False)
@click.option("--watch", is_flag=True, help="A live table until the rollout ends.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rollout_status(ctx: click.Context, rollout_id: int | None, watch: bool, as_json: bool) -> None:
    """A rollout (the latest by default): progress, each gateway's state, step and time."""
    from rich.console import Console

    with _open(ctx) as f:
        if rollout_id is None:
            latest = f.rollouts(1)
            if not latest:
                raise click.ClickException("no rollout yet (estran fleet rollout start VERSION)")
            rollout_id = latest[0].id
        if as_json:
            _echo_json(f.rollout(rollout_id).as_dict())
            return
        if watch:
            _watch(f, rollout_id)
        else:
            Console().print(rollout_table(f.rollout(rollout_id)))


@rollout_cmd.command("list")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rollout_list(ctx: click.Context, limit: int, as_json: bool) -> None:
    with _open(ctx) as f:
        rows = f.rollouts(limit)
    if as_json:
        _echo_json([r.as_dict() for r in rows])
        return
    for r in rows:
        click.echo(f"{r.id:>4} {r.release:<12} {r.mode:<5} {r.state:<10} "
                   f"{r.finished}/{len(r.gateways)} {_iso(r.created_ms)}  {r.reason}")  # fmt: skip


def _control(ctx: click.Context, rollout_id: int, action: str) -> None:
    with _open(ctx) as f:
        method = getattr(f, f"{action}_rollout")
        r = method(rollout_id, _actor())
    click.echo(f"rollout {r.id}: {r.state}")


@rollout_cmd.command("pause")
@click.argument("rollout_id", type=int)
@click.pass_context
def rollout_pause(ctx: click.Context, rollout_id: int) -> None:
    """No further gateway starts; those under way finish."""
    _control(ctx, rollout_id, "pause")


@rollout_cmd.command("resume")
@click.argument("rollout_id", type=int)
@click.pass_context
def rollout_resume(ctx: click.Context, rollout_id: int) -> None:
    _control(ctx, rollout_id, "resume")


@rollout_cmd.command("cancel")
@click.argument("rollout_id", type=int)
@click.pass_context
def rollout_cancel(ctx: click.Context, rollout_id: int) -> None:
    """The gateways not started are spared; those under way finish."""
    _control(ctx, rollout_id, "cancel")


# -- inventory -----------------------------------------------------------------------------------


@click.command("inventory")
@click.option("--list", "as_list", is_flag=True, help="Ansible's JSON inventory (the default).")
@click.option("--host", default=None, help="One host's variables.")
@click.option("--write", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write it to a file (an inventory for ansible-playbook -i).")  # fmt: skip
@click.pass_context
def inventory_cmd(ctx: click.Context, as_list: bool, host: str | None, write: Path | None) -> None:
    """The registry as an Ansible inventory: groups, host variables, each gateway's state.
    (playbooks/inventory/estran_hub.py is the same over the hub's HTTP API.)"""
    with _open(ctx) as f:
        value: Any = f.host(host) if host else f.inventory()
    text = json.dumps(value, indent=2, sort_keys=True)
    if write is not None:
        write.write_text(text + "\n")
        click.echo(f"{write}: {len(value.get('_meta', {}).get('hostvars', {}))} hosts", err=True)
    else:
        click.echo(text)


@click.command("hostvars")
@click.option("--fleet", "scope", flag_value="fleet", help="Every gateway.")
@click.option("--group", "group_name", default=None)
@click.option("--gateway", "gateway_id", default=None)
@click.option("--file", "path", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=None, help="A TOML or JSON table of variables (replaces them all).")  # fmt: skip
@click.argument("assignments", nargs=-1)
@click.pass_context
def hostvars_cmd(
    ctx: click.Context,
    scope: str | None,
    group_name: str | None,
    gateway_id: str | None,
    path: Path | None,
    assignments: tuple[str, ...],
) -> None:
    """Host variables of the inventory (how Ansible reaches gateways): NAME=VALUE (VALUE is
    TOML, a bare word is a string, `null` removes it). No secret: those go in a vault.

    \b
    estran fleet hostvars --group marina ansible_user=pi estran_python=/usr/bin/python3
    estran fleet hostvars --gateway marina-001 ansible_host=10.0.4.17
    """
    chosen = [s for s in (scope, group_name and "group", gateway_id and "gateway") if s]
    if len(chosen) != 1:
        raise click.UsageError("name one of --fleet, --group G, --gateway ID")
    kind = chosen[0]
    name = group_name if kind == "group" else gateway_id
    values: dict[str, object] = {}
    if path is not None:
        text = path.read_text()
        try:
            values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
        except (ValueError, tomllib.TOMLDecodeError) as e:
            raise click.ClickException(f"{path}: {e}") from e
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"{item!r}: NAME=VALUE")
        if raw == "null":
            values[key] = None
            continue
        try:
            values[key] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            values[key] = raw
    with _open(ctx) as f:
        result = f.set_hostvars(kind, name, values, _actor(), replace=path is not None)  # type: ignore[arg-type]
    _echo_json(result)


__all__ = ["hostvars_cmd", "inventory_cmd", "release_cmd", "rollout_cmd", "rollout_table"]
