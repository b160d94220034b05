"""The alert engine against both databases: each rule kind, the lifecycle, de-duplication,
flap damping, a restart. Event clock: time is what the readings say."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from hub.alerts import RuleError, parse_rule
from hub.storage import Dataset, GatewayState, SensorMeta, SourceStatus
from hub.tests.alert_support import MIN, T0, batch, running_engine

BIN_RULE = {
    "id": "bin-full",
    "kind": "threshold",
    "scope": {"kind": "bin"},
    "params": {"quantity": "fill", "op": ">=", "value": 80, "clear": 70, "for": "10 min"},
    "channels": ["ops"],
    "damping": "15 min",
}


async def test_threshold_hysteresis_duration_dedup_and_flap(
    storage_spec: str, tmp_path: Path
) -> None:
    async with running_engine(storage_spec, tmp_path, [BIN_RULE]) as (engine, notes, service):

        def fill(minute: int, value: float, sensor: str = "bin-001") -> None:
            engine.committed(
                [batch("gw-1", [(sensor, "fill", "%", T0 + minute * MIN, value)])], 0.0
            )

        fill(0, 75)
        fill(10, 82)  # met, pending
        fill(15, 85)  # still pending: 5 min only
        fill(16, 50, "soil-001")  # another kind: out of scope
        await engine.drain()
        assert service.alerts() == []
        fill(20, 88)  # held 10 min: fires
        fill(30, 90)  # the same alert, not a second
        fill(35, 75)  # in the hysteresis band (70..80): nothing changes
        await engine.drain()
        [alert] = service.alerts()
        assert (alert.state, alert.subject, alert.fired_ms, alert.value) == (
            "firing",
            "bin-001",
            T0 + 20 * MIN,
            90,
        )
        fill(40, 60)  # clear: resolves once clear for 15 min (damping)
        fill(45, 85)  # back before: a flap on the same alert
        fill(50, 60)
        engine.tick(T0 + 64 * MIN)
        await engine.drain()
        assert service.alert(alert.id).state == "firing"
        engine.tick(T0 + 65 * MIN)
        await engine.drain()
        done = service.alert(alert.id)
        assert (done.state, done.resolved_by, done.resolved_ms, done.flaps) == (
            "resolved",
            "system",
            T0 + 65 * MIN,
            1,
        )
        assert [(n.event, n.alert.id, n.channels) for n in notes] == [
            ("fired", alert.id, ("ops",)),
            ("resolved", alert.id, ("ops",)),
        ]
        assert [e.event for e in service.events(alert.id)] == ["fired", "flap", "resolved"]


async def test_threshold_fires_on_the_timer_without_a_new_reading(tmp_path: Path) -> None:
    async with running_engine("sqlite", tmp_path, [BIN_RULE]) as (engine, notes, service):
        engine.committed([batch("gw-1", [("bin-002", "fill", "%", T0, 81)])], 0.0)
        engine.tick(T0 + 9 * MIN)
        await engine.drain()
        assert notes == []
        engine.tick(T0 + 10 * MIN)
        await engine.drain()
        [alert] = service.alerts("open")
        assert alert.fired_ms == T0 + 10 * MIN


async def test_silence_night_flow_meter_flags(storage_spec: str, tmp_path: Path) -> None:
    rules = [
        {
            "id": "soil-silent",
            "kind": "silence",
            "scope": {"kind": "soil"},
            "params": {"after": "1h"},
            "damping": 0,
        },
        {
            "id": "night-leak",
            "kind": "night_flow",
            "scope": {"kind": "water"},
            "params": {"quantity": "flow"},
        },
        {
            "id": "meter-flags",
            "kind": "meter_flag",
            "scope": {"kind": "water"},
            "params": {},
            "damping": 0,
        },
    ]
    async with running_engine(storage_spec, tmp_path, rules) as (engine, _notes, service):
        rows = []
        # T0 is 01:00 in Paris; readings every 15 min for 4 h: the 02:00-04:00 window is in
        for i in range(17):
            ts = T0 + i * 15 * MIN
            rows.append(("water-001", "flow", "m3/h", ts, 0.12))  # never zero: a leak
            rows.append(("water-002", "flow", "m3/h", ts, 0.0 if i % 4 == 0 else 0.5))
            if i < 4:
                rows.append(("soil-003", "moisture", "%RH", ts, 30.0))
        rows.append(("water-002", "leak", None, T0 + 30 * MIN, True))
        rows.append(("water-002", "battery_low", None, T0 + 30 * MIN, False))
        engine.committed([batch("gw-1", rows)], 0.0)
        await engine.drain()
        got = sorted((a.rule_id, a.subject, a.state) for a in service.alerts())
        assert got == [
            ("meter-flags", "water-002/leak", "firing"),
            ("night-leak", "water-001", "firing"),
            ("soil-silent", "soil-003", "firing"),
        ]
        [leak] = service.alerts(rule="night-leak")
        assert leak.value == 0.12 and "02:00 and 04:00" in leak.summary
        silent = service.alerts(rule="soil-silent")[0]
        assert silent.fired_ms == T0 + 45 * MIN + 60 * MIN
        # the sensor speaks again, the meter clears its flag
        engine.committed(
            [
                batch(
                    "gw-1",
                    [
                        ("soil-003", "moisture", "%RH", T0 + 5 * 60 * MIN, 31.0),
                        ("water-002", "leak", None, T0 + 5 * 60 * MIN, False),
                    ],
                    100,
                )
            ],
            0.0,
        )
        await engine.drain()
        assert sorted((a.rule_id, a.state) for a in service.alerts()) == [
            ("meter-flags", "resolved"),
            ("night-leak", "firing"),
            ("soil-silent", "resolved"),
        ]


async def test_counter_night_flow_rate_and_change(tmp_path: Path) -> None:
    rules = [
        {
            "id": "night-index",
            "kind": "night_flow",
            "scope": {"sensor": "water-010"},
            "params": {"quantity": "volume", "counter": True},
        },
        {
            "id": "canal-rise",
            "kind": "rate",
            "scope": {"kind": "level"},
            "params": {"quantity": "level", "change": 0.5, "window": "30 min", "direction": "rise"},
            "damping": 0,
        },
        {
            "id": "berth",
            "kind": "change",
            "scope": {"kind": "berth"},
            "params": {"quantity": "occupied"},
        },
    ]
    async with running_engine("sqlite", tmp_path, rules) as (engine, notes, service):
        rows = []
        for i in range(17):
            ts = T0 + i * 15 * MIN
            rows.append(("water-010", "volume", "m3", ts, 100.0 + 0.01 * i))  # always rising
        rows += [
            ("level-001", "level", "m", T0, 1.0),
            ("level-001", "level", "m", T0 + 10 * MIN, 1.2),
            ("level-001", "level", "m", T0 + 20 * MIN, 1.6),  # +0.6 in 20 min
            ("berth-001", "occupied", "/", T0, 0),
            ("berth-001", "occupied", "/", T0 + 5 * MIN, 1),
            ("berth-001", "occupied", "/", T0 + 10 * MIN, 1),
            ("berth-001", "occupied", "/", T0 + 15 * MIN, 0),
        ]
        engine.committed([batch("gw-1", rows)], 0.0)
        await engine.drain()
        by_rule = {a.rule_id: a for a in service.alerts()}
        assert by_rule["night-index"].state == "firing"
        assert by_rule["night-index"].value == pytest.approx(0.04)  # m3/h
        assert by_rule["canal-rise"].state == "firing"
        assert by_rule["berth"].state == "resolved"
        assert [(n.event, n.alert.rule_id) for n in notes if n.alert.rule_id == "berth"] == [
            ("fired", "berth"),
            ("resolved", "berth"),
        ]


async def test_gateway_offline_buffer_quota_source_down(tmp_path: Path) -> None:
    rules = [
        {"id": "gw-off", "kind": "gateway_offline", "params": {"after": "2 min"}, "damping": 0},
        {"id": "gw-buffer", "kind": "buffer_quota", "params": {"ratio": 0.8}, "damping": 0},
        {
            "id": "gw-source",
            "kind": "source_down",
            "scope": {"gateway": "gw-1"},
            "params": {},
            "damping": 0,
        },
    ]
    async with running_engine("sqlite", tmp_path, rules) as (engine, _notes, service):
        engine.committed([batch("gw-1", [("x-001", "v", None, T0, 1)])], 0.0)
        fp = {"buffer_bytes": 900, "quota_bytes": 1000}
        sources = (SourceStatus("serial0", "ok"), SourceStatus("ble", "down", detail="no adapter"))
        engine.state("gw-1", GatewayState(True, 1, T0, footprint=fp, sources=sources), True)
        engine.state("gw-2", GatewayState(False, 1, T0), True)
        engine.state("gw-3", GatewayState(False, 1, T0), False)  # not applied: an old Will
        engine.tick(T0 + 1 * MIN)
        await engine.drain()
        assert sorted((a.rule_id, a.subject) for a in service.alerts("open")) == [
            ("gw-buffer", "gw-1"),
            ("gw-source", "gw-1/ble"),
        ]
        engine.tick(T0 + 2 * MIN)
        await engine.drain()
        assert ("gw-off", "gw-2") in {(a.rule_id, a.subject) for a in service.alerts("open")}
        engine.committed([batch("gw-1", [("x-001", "v", None, T0 + 3 * MIN, 1)], 2)], 0.0)
        sources = (SourceStatus("serial0", "ok"), SourceStatus("ble", "degraded"))
        engine.state(
            "gw-1",
            GatewayState(
                True,
                1,
                T0,
                footprint={"buffer_bytes": 100, "quota_bytes": 1000},
                sources=sources,
            ),
            True,
        )
        engine.state("gw-2", GatewayState(True, 2, T0), True)
        await engine.drain()
        assert service.alerts("open") == []


async def test_restart_keeps_open_alerts_and_pending_state(
    storage_spec: str, tmp_path: Path
) -> None:
    async with running_engine(storage_spec, tmp_path, [BIN_RULE]) as (engine, notes, service):
        engine.committed(
            [
                batch(
                    "gw-1",
                    [("bin-001", "fill", "%", T0, 90), ("bin-002", "fill", "%", T0 + 5 * MIN, 95)],
                )
            ],
            0.0,
        )
        engine.tick(T0 + 10 * MIN)  # bin-001 fires, bin-002 is pending
        await engine.drain()
        assert len(notes) == 1
    async with running_engine(storage_spec, tmp_path) as (engine, notes, service):
        engine.committed([batch("gw-1", [("bin-001", "fill", "%", T0 + 12 * MIN, 91)], 10)], 0.0)
        engine.tick(T0 + 15 * MIN)
        await engine.drain()
        # bin-001 is the same alert (no repeat); bin-002's pending 10 min ran out across the restart
        assert [(n.event, n.alert.subject) for n in notes] == [("fired", "bin-002")]
        assert sorted(a.subject for a in service.alerts("open")) == ["bin-001", "bin-002"]


async def test_acknowledge_and_resolve_by_hand(tmp_path: Path) -> None:
    async with running_engine("sqlite", tmp_path, [dict(BIN_RULE, damping=0)]) as (
        engine,
        _notes,
        service,
    ):
        engine.committed([batch("gw-1", [("bin-001", "fill", "%", T0, 90)])], 0.0)
        engine.tick(T0 + 10 * MIN)
        await engine.drain()
        [alert] = service.alerts()
        import asyncio

        acked = await asyncio.to_thread(service.acknowledge, alert.id, "alice", "on my way")
        assert (acked.state, acked.ack_by) == ("acknowledged", "alice")
        done = await asyncio.to_thread(service.resolve, alert.id, "alice", "emptied")
        assert (done.state, done.resolved_by) == ("resolved", "alice")
        # still above: resolved by hand, it does not fire again until it has cleared once
        engine.committed([batch("gw-1", [("bin-001", "fill", "%", T0 + 30 * MIN, 92)], 2)], 0.0)
        engine.tick(T0 + 60 * MIN)
        await engine.drain()
        assert service.alerts("open") == []
        engine.committed(
            [
                batch(
                    "gw-1",
                    [
                        ("bin-001", "fill", "%", T0 + 61 * MIN, 10),
                        ("bin-001", "fill", "%", T0 + 62 * MIN, 85),
                    ],
                    3,
                )
            ],
            0.0,
        )
        engine.tick(T0 + 80 * MIN)
        await engine.drain()
        assert len(service.alerts("open")) == 1
        with pytest.raises(RuleError):
            await asyncio.to_thread(service.acknowledge, alert.id, "bob")
        events = [(e.event, e.actor) for e in service.events(alert.id)]
        assert events == [("fired", "system"), ("acknowledged", "alice"), ("resolved", "alice")]


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"id": "Bad id", "kind": "silence", "params": {"after": 60}}, "id"),
        ({"id": "x", "kind": "nope"}, "kind"),
        ({"id": "x", "kind": "silence", "params": {}}, "after"),
        ({"id": "x", "kind": "silence", "params": {"after": "forever"}}, "after"),
        (
            {"id": "x", "kind": "threshold", "params": {"quantity": "q", "value": 5, "clear": 6}},
            "clear",
        ),
        ({"id": "x", "kind": "threshold", "params": {"quantity": "q", "value": "5"}}, "value"),
        (
            {"id": "x", "kind": "threshold", "params": {"quantity": "q", "value": 5, "evil": 1}},
            "params",
        ),
        ({"id": "x", "kind": "night_flow", "params": {"tz": "Mars/Olympus"}}, "tz"),
        ({"id": "x", "kind": "night_flow", "params": {"start": "25:00"}}, "start"),
        ({"id": "x", "kind": "meter_flag", "params": {"flags": ["fire"]}}, "flags"),
        ({"id": "x", "kind": "gateway_offline", "scope": {"kind": "bin"}}, "scope"),
        (
            {"id": "x", "kind": "silence", "params": {"after": 60}, "scope": {"planet": "x"}},
            "scope",
        ),
        ({"id": "x", "kind": "silence", "params": {"after": 60}, "channels": "ops"}, "channels"),
        ([1, 2], "rule"),
    ],
)
def test_rule_validation(doc: object, reason: str) -> None:
    with pytest.raises(RuleError) as e:
        parse_rule(doc)
    assert e.value.reason == reason


async def test_scopes_sensor_kind_group_gateway(tmp_path: Path) -> None:
    def rule(rule_id: str, scope: dict[str, str]) -> dict[str, object]:
        return {
            "id": rule_id,
            "kind": "threshold",
            "scope": scope,
            "damping": 0,
            "params": {"quantity": "moisture", "op": "<", "value": 10},
        }

    rules = [
        rule("one-sensor", {"sensor": "soil-002"}),
        rule("kind", {"kind": "soil"}),
        rule("parks", {"group": "parks"}),
        rule("gateway", {"gateway": "gw-2"}),
        rule("everything", {}),
        rule("dataset", {"dataset": "open-parks"}),
    ]
    groups = {"gw-1": "parks", "gw-2": "harbour"}
    async with running_engine("sqlite", tmp_path, rules, groups) as (engine, _notes, service):
        engine.committed([batch("gw-1", [("soil-001", "moisture", "%RH", T0, 5.0)])], 0.0)
        engine.committed([batch("gw-2", [("soil-002", "moisture", "%RH", T0, 5.0)])], 0.0)
        engine.committed([batch("gw-2", [("probe-9", "moisture", "%RH", T0, 5.0)])], 0.0)
        await engine.drain()
        got = sorted((a.rule_id, a.subject) for a in service.alerts())
        assert ("kind", "probe-9") not in got and ("dataset", "probe-9") not in got
        # the catalogue says probe-9 is a soil probe of the dataset open-parks
        catalogue = service.store.storage
        catalogue.put_dataset(Dataset("open-parks", True, "etalab-2.0", "", "parks"), "t", 1)
        catalogue.put_sensor_meta(SensorMeta("probe-9", "open-parks", kind="soil"), "t", 1)
        await engine.refresh()
        engine.committed([batch("gw-2", [("probe-9", "moisture", "%RH", T0 + 1, 4.0)], 9)], 0.0)
        await engine.drain()
        got = sorted((a.rule_id, a.subject) for a in service.alerts())
        assert got == [
            ("dataset", "probe-9"),
            ("everything", "probe-9"),
            ("everything", "soil-001"),
            ("everything", "soil-002"),
            ("gateway", "probe-9"),
            ("gateway", "soil-002"),
            ("kind", "probe-9"),
            ("kind", "soil-001"),
            ("kind", "soil-002"),
            ("one-sensor", "soil-002"),
            ("parks", "soil-001"),
        ]


async def test_disabling_a_rule_ends_its_alerts(tmp_path: Path) -> None:
    async with running_engine("sqlite", tmp_path, [dict(BIN_RULE, damping=0)]) as (
        engine,
        notes,
        service,
    ):
        engine.committed([batch("gw-1", [("bin-001", "fill", "%", T0, 90)])], 0.0)
        engine.tick(T0 + 10 * MIN)
        await engine.drain()
        [alert] = service.alerts("open")
        await asyncio.to_thread(service.set_enabled, "bin-full", False, "alice")
        await engine.drain()
        done = service.alert(alert.id)
        assert (done.state, done.resolved_by) == ("resolved", "system")
        assert service.events(alert.id)[-1].detail == {"why": "rule disabled"}
        # a disabled rule evaluates nothing
        engine.committed([batch("gw-1", [("bin-002", "fill", "%", T0 + 20 * MIN, 95)], 2)], 0.0)
        engine.tick(T0 + 60 * MIN)
        await engine.drain()
        assert service.alerts("open") == []
        assert [n.event for n in notes] == ["fired", "resolved"]
        assert notes[-1].channels == ()  # nothing is sent for it
