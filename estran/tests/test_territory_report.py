"""What the territory scenario says when it fails (estran.rig.territory): the audit and the
report of a stalled wait name the gateway, the sequence numbers and the sensors."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge.buffer import BufferConfig, SegmentLog
from estran.rig.swarm import SwarmHub
from estran.rig.swarm._territory import LEDGER, ledger_line
from estran.rig.territory import Gateway, Territory, _describe, _GatewayChild, audit, ranges
from protocols.reading import Reading

T0 = 1_796_600_000_000


def test_ranges() -> None:
    assert ranges([5, 1, 2, 3, 9]) == "1-3, 5, 9"
    assert ranges(range(0, 40, 2)).endswith("(+12 more ranges)")


def test_the_audit_and_a_stall_name_gateway_seqs_and_sensors(tmp_path: Path) -> None:
    hub = SwarmHub(tmp_path / "hub-rig")
    hub.data.mkdir(parents=True)
    db_path = hub.data / "estran.sqlite3"
    with sqlite3.connect(db_path) as db:  # the columns the audit reads (docs/hub.md)
        db.executescript(
            "CREATE TABLE gateways (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);"
            "CREATE TABLE series (id INTEGER PRIMARY KEY, sensor TEXT, quantity TEXT, unit TEXT);"
            "CREATE TABLE readings (gateway_id INTEGER, seq INTEGER, series_id INTEGER,"
            " ts_ms INTEGER, value, text TEXT, flags INTEGER, PRIMARY KEY (gateway_id, seq));"
            "INSERT INTO gateways VALUES (1, 'site-a-001');"
            "INSERT INTO series VALUES (1, 'meter-001', 'energy', 'Wh'), (2, 'bin-002', 'fill', '%');"
        )
        # seqs 1-3 and 7 at the hub, 7 never committed by the gateway; 4-6 missing
        db.executemany(
            "INSERT INTO readings VALUES (1, ?, ?, ?, 1.0, NULL, 0)",
            [(q, 1 if q <= 3 else 2, T0 + q) for q in (1, 2, 3, 7)],
        )
    data = tmp_path / "gw"
    readings = [Reading("meter-001", "energy", "Wh", 1.0, T0 + q) for q in range(1, 4)] + [
        Reading("bin-002", "fill", "%", 50, T0 + q) for q in range(4, 7)
    ]
    with SegmentLog.open(BufferConfig(data / "buffer")) as log:
        seqs = [log.append(r) for r in readings]
        log.commit()
        log.ack([(1, 3)])
    assert seqs == [1, 2, 3, 4, 5, 6]
    (data / LEDGER).write_text(
        "".join(ledger_line(q, r) for q, r in zip(seqs, readings, strict=True))
    )
    child = _GatewayChild("site-a-001", ["true"], tmp_path / "gw.log")
    gateway = Gateway(0, 0, data, child, "site-a-001")
    t = Territory(tmp_path, 180.0, hub, gateways=[gateway])

    found = audit(t)
    assert (found["missing"], found["extra"]) == (3, 1)
    assert found["problems"] == [
        "site-a-001: 3 committed readings not at the hub: seqs 4-6; sensors: bin-002 fill: 3",
        "site-a-001: 1 readings at the hub it never committed: seqs 7; sensors: bin-002 fill: 1",
    ]

    report = _describe(gateway, db_path, {"site-a-001": {"state": "online", "backlog": 3}})
    assert "site-a-001 (process not running): no status line yet" in report
    assert "hub: online, backlog it reported 3" in report
    assert "buffer: depth 3" in report
    assert (
        "unacknowledged in its buffer: seqs 4-6; 0 of them already at the hub; "
        "sensors: bin-002 fill: 3" in report
    ), report
    assert "ledger: 6 committed, 3 not at the hub: seqs 4-6; sensors: bin-002 fill: 3" in report
