"""`estran hub alert`: rules, channels and alerts, on the hub's database directly.

Like `estran fleet`, these commands run on the hub's machine as the hub's user, against the
same `--data` and `--db` as `estran hub run`, while the hub runs: a running hub picks up rule
and channel changes within 5 s. Every change is a new rule version with who and when.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from fleet.cli import _actor, _iso
from fleet.cli_options import hub_data_option, hub_db_option
from hub._errors import HubError
from hub.alerts._service import AlertService


@contextmanager
def _service(ctx: click.Context) -> Iterator[AlertService]:
    from fleet import Fleet, FleetError
    from hub.storage import open_storage

    data: Path = ctx.obj["data"]
    if not data.is_dir():
        raise click.ClickException(f"{data}: no hub data directory here (--data DIR)")
    try:
        storage = open_storage(ctx.obj["db"], data)
        fleet = Fleet(data)  # the hub's audit log
    except (HubError, FleetError) as e:
        raise click.ClickException(str(e)) from e

    def audit(actor: str, action: str, target: str, detail: dict[str, Any]) -> None:
        fleet.record(actor, action, target, origin="cli", **detail)

    try:
        yield AlertService(storage, audit=audit)
    except (HubError, FleetError) as e:
        raise click.ClickException(str(e)) from e
    finally:
        storage.close()
        fleet.close()


def _read_doc(source: str) -> Any:
    text = sys.stdin.read() if source == "-" else Path(source).read_text()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise click.ClickException(f"{source}: not JSON: {e}") from e


def _echo_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


@click.group("alert")
@hub_data_option
@hub_db_option
@click.pass_context
def alert(ctx: click.Context, data: Path, db: str) -> None:
    """Alert rules, channels and alerts (docs/alerts.md)."""
    ctx.obj = {"data": data, "db": db}


@alert.command("list")
@click.option(
    "--state", type=click.Choice(["open", "firing", "acknowledged", "resolved"]), default=None
)
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_alerts(ctx: click.Context, state: str | None, limit: int, as_json: bool) -> None:
    """Alerts, newest first."""
    with _service(ctx) as s:
        alerts = s.alerts(state, limit=limit)
    if as_json:
        _echo_json([a.as_dict() for a in alerts])
        return
    for a in alerts:
        click.echo(f"{a.id}  {a.state:<12} {a.severity:<8} {_iso(a.fired_ms)}  {a.summary}")


@alert.group()
def rule() -> None:
    """Alert rules: JSON documents (docs/alerts.md)."""


@rule.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rule_list(ctx: click.Context, as_json: bool) -> None:
    with _service(ctx) as s:
        rules = s.rules()
    if as_json:
        _echo_json([r.as_dict() for r in rules])
        return
    for r in rules:
        scope = ", ".join(f"{k}={v}" for k, v in r.scope.as_dict().items()) or "all"
        state = "" if r.enabled else " (disabled)"
        click.echo(f"{r.id}  v{r.version}  {r.kind:<15} {scope}{state}")


@rule.command("add")
@click.argument("source")
@click.pass_context
def rule_add(ctx: click.Context, source: str) -> None:
    """Create a rule from a JSON file (or - for stdin)."""
    doc = _read_doc(source)
    with _service(ctx) as s:
        saved = s.create_rule(doc, _actor())
    click.echo(f"rule {saved.id} created (version {saved.version})")


@rule.command("update")
@click.argument("rule_id")
@click.argument("source")
@click.pass_context
def rule_update(ctx: click.Context, rule_id: str, source: str) -> None:
    """Replace a rule with a JSON file (a new version)."""
    doc = _read_doc(source)
    with _service(ctx) as s:
        saved = s.update_rule(rule_id, doc, _actor())
    click.echo(f"rule {saved.id} updated (version {saved.version})")


@rule.command("show")
@click.argument("rule_id")
@click.option("--versions", is_flag=True, help="Every version, with who and when.")
@click.pass_context
def rule_show(ctx: click.Context, rule_id: str, versions: bool) -> None:
    with _service(ctx) as s:
        if versions:
            _echo_json(
                [
                    {
                        "version": v.version,
                        "action": v.action,
                        "actor": v.actor,
                        "at": _iso(v.ts_ms),
                        "doc": v.doc,
                    }
                    for v in s.rule_versions(rule_id)
                ]
            )
        else:
            _echo_json(s.rule(rule_id).as_dict())


@rule.command("enable")
@click.argument("rule_id")
@click.pass_context
def rule_enable(ctx: click.Context, rule_id: str) -> None:
    with _service(ctx) as s:
        saved = s.set_enabled(rule_id, True, _actor())
    click.echo(f"rule {rule_id} enabled (version {saved.version})")


@rule.command("disable")
@click.argument("rule_id")
@click.pass_context
def rule_disable(ctx: click.Context, rule_id: str) -> None:
    with _service(ctx) as s:
        saved = s.set_enabled(rule_id, False, _actor())
    click.echo(f"rule {rule_id} disabled (version {saved.version})")


@rule.command("delete")
@click.argument("rule_id")
@click.pass_context
def rule_delete(ctx: click.Context, rule_id: str) -> None:
    """Delete a rule (its versions stay, for the record)."""
    with _service(ctx) as s:
        s.delete_rule(rule_id, _actor())
    click.echo(f"rule {rule_id} deleted")


@alert.group()
def channel() -> None:
    """Where alerts go: webhook, mqtt, email, sms."""


@channel.command("list")
@click.pass_context
def channel_list(ctx: click.Context) -> None:
    with _service(ctx) as s:
        _echo_json([c.public() for c in s.channels()])


@channel.command("set")
@click.argument("name")
@click.option(
    "--type", "type_", type=click.Choice(["webhook", "mqtt", "email", "sms"]), required=True
)
@click.argument("source")
@click.pass_context
def channel_set(ctx: click.Context, name: str, type_: str, source: str) -> None:
    """Create or replace a channel; SOURCE is its JSON settings (a file, or - for stdin)."""
    config = _read_doc(source)
    if not isinstance(config, dict):
        raise click.ClickException("the settings must be a JSON object")
    with _service(ctx) as s:
        s.save_channel(name, type_, config, _actor())
    click.echo(f"channel {name} saved")


@channel.command("delete")
@click.argument("name")
@click.pass_context
def channel_delete(ctx: click.Context, name: str) -> None:
    with _service(ctx) as s:
        s.delete_channel(name, _actor())
    click.echo(f"channel {name} deleted")


@alert.command("dead-letters")
@click.option("--all", "all_", is_flag=True, help="Replayed ones too.")
@click.pass_context
def dead_letters(ctx: click.Context, all_: bool) -> None:
    """Deliveries that failed every attempt (replay them with the API)."""
    with _service(ctx) as s:
        letters = s.dead_letters(not all_)
    for d in letters:
        replayed = f" replayed {_iso(d.replayed_ms)} by {d.replayed_by}" if d.replayed_ms else ""
        click.echo(f"{d.id}  {_iso(d.ts_ms)}  {d.channel}  {d.error}{replayed}")


__all__ = ["alert"]
