"""Which changes wait for a restart is the schema's ``restart`` flag (protocols.settings),
read by the daemon: no list of its own. Flipping a flag in the schema flips the outcome."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_config, restart_tables
from edge.daemon import Daemon, SystemdNotifier
from edge.tests.support.daemon import FakeWiring, port, write_config
from protocols import settings

NO_SYSTEMD = SystemdNotifier({})


def flag(table: str, name: str) -> settings.Field:
    return dict(settings.SECTIONS)[table].field(name)


async def reload_with(
    tmp_path: Path, daemon_lines: str, gateway: str = ""
) -> tuple[Daemon, list[str]]:
    """A daemon started on write_config's file, then reloaded with `daemon_lines` in
    [daemon] (``put_timeout = 1`` there is replaced) and `gateway` in [gateway]."""
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    daemon = Daemon(load_config(path), FakeWiring().wiring(), NO_SYSTEMD)
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.ready.wait(), 10)
    try:
        text = path.read_text().replace("put_timeout = 1\n", daemon_lines + "\n")
        path.write_text(text.replace('id = "gw-test"\n', 'id = "gw-test"\n' + gateway))
        result = await daemon.reload()
        assert result.ok, result.error
        return daemon, result.needs_restart
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 10)


async def test_a_setting_flagged_restart_waits_and_one_flagged_reload_applies(
    tmp_path: Path,
) -> None:
    assert flag("daemon", "queue_size").restart and not flag("daemon", "put_timeout").restart
    daemon, pending = await reload_with(tmp_path, "queue_size = 4096\nput_timeout = 3")
    assert pending == ["daemon.queue_size"]
    assert daemon.config.daemon.queue_size == 2048  # kept until the restart
    assert daemon.config.daemon.put_timeout_s == 3.0  # taken at once
    assert daemon.health.restart_pending == ["daemon.queue_size"]


async def test_flipping_the_schema_s_flags_flips_the_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(flag("daemon", "queue_size"), "restart", False)
    monkeypatch.setattr(flag("daemon", "put_timeout"), "restart", True)
    daemon, pending = await reload_with(tmp_path, "queue_size = 4096\nput_timeout = 3")
    assert pending == ["daemon.put_timeout"]
    assert daemon.config.daemon.put_timeout_s == 1.0  # the running value (write_config's)
    assert daemon.config.daemon.queue_size == 4096


async def test_a_table_flagged_whole_is_reported_by_its_name(tmp_path: Path) -> None:
    assert all(f.restart for f in dict(settings.SECTIONS)["gateway"].fields)
    daemon, pending = await reload_with(tmp_path, "", gateway='log_level = "debug"\n')
    assert pending == ["gateway"]
    assert daemon.config.gateway.log_level == "info"


def test_every_flagged_setting_is_read_from_the_typed_configuration(tmp_path: Path) -> None:
    """Each setting the schema flags maps to an attribute of EdgeConfig's section (a newly
    flagged setting whose attribute is named otherwise fails here, not on a gateway)."""
    path = write_config(tmp_path / "edge.toml", tmp_path / "d", port("/dev/a", "a"))
    config: EdgeConfig = load_config(path)
    found = {(t.table, s) for t in restart_tables() for s in t.settings}
    flagged = {
        (name, f.name) for name, table in settings.SECTIONS for f in table.fields if f.restart
    }
    assert found == flagged and ("daemon", "queue_size") in found
    for t in restart_tables():
        section = getattr(config, t.table)
        assert dataclasses.is_dataclass(section)
        for s in t.settings:
            assert hasattr(section, t.attribute(s)), (t.table, s)


def test_a_restart_flag_on_a_table_the_daemon_reloads_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(flag("serial", "protocol"), "restart", True)
    with pytest.raises(ValueError, match="serial"):
        restart_tables()
