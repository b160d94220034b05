"""The real daemon (real serial sources, real buffer) on the serial simulators, with faults:
bad checksums counted by reason, an unplugged port reported and recovered, everything the
sources read committed to the buffer on stop."""

from __future__ import annotations

import asyncio
from pathlib import Path

from edge.buffer import BufferConfig, SegmentLog
from edge.config import load_config
from edge.daemon import Daemon, SystemdNotifier
from edge.daemon._wiring import default_wiring
from edge.simulators.serial import Fault, ModbusSimulator, ModbusSlave, NmeaSimulator
from edge.tests.support.daemon import port_table, wait_until


async def test_daemon_on_simulators_counts_faults_recovers_and_commits(tmp_path: Path) -> None:
    sim_dir = tmp_path / "sim"
    async with (
        NmeaSimulator("ttyNMEA", directory=sim_dir, interval=0.1) as nmea,
        ModbusSimulator(
            "ttyBUS", slaves=[ModbusSlave(1, "soil"), ModbusSlave(2, "soil")], directory=sim_dir
        ) as bus,
    ):
        modbus_port = bus.port_config()
        for device in modbus_port["devices"]:  # type: ignore[union-attr]
            device["interval"] = 0.2
        nmea_port = nmea.port_config()
        path = tmp_path / "edge.toml"
        path.write_text(
            f'[gateway]\nid = "gw-e2e"\ndata_dir = "{tmp_path / "d"}"\n'
            '[buffer]\ncommit_interval = "100ms"\n'
            + port_table(nmea_port, reconnect_min=0.1, reconnect_max=0.2)  # type: ignore[arg-type]
            + port_table(modbus_port, reconnect_min=0.1, reconnect_max=0.2)  # type: ignore[arg-type]
        )
        config = load_config(path)
        nmea_source = config.serial[0].source_name
        soil = [d.sensor for d in config.serial[1].devices]
        daemon = Daemon(config, default_wiring(), SystemdNotifier({}))
        task = asyncio.create_task(daemon.run(), name="daemon-e2e")
        health = daemon.health
        try:
            await asyncio.wait_for(daemon.ready.wait(), 10)
            await wait_until(
                lambda: all(health.sensors[s].samples > 0 for s in config.sensor_ids()), 10
            )

            bus.inject(Fault.bad_checksum(3))
            await wait_until(
                lambda: sum(health.sensors[s].errors.by_reason["checksum"] for s in soil) >= 1, 10
            )

            nmea.inject(Fault.unplug(seconds=0.5))
            await wait_until(lambda: health.sources[nmea_source].state == "down", 10)
            assert health.sources[nmea_source].errors.by_reason["unplugged"] >= 1
            nmea_samples = health.sensors[config.serial[0].devices[0].sensor].samples
            await wait_until(lambda: health.sources[nmea_source].state == "up", 10)
            await wait_until(
                lambda: health.sensors[config.serial[0].devices[0].sensor].samples > nmea_samples,
                10,
            )
            assert all(s.crashes == 0 for s in health.sources.values())  # faults are not crashes
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 15)
    stored = sum(s.reported for s in health.sensors.values())
    log = SegmentLog.open(BufferConfig(tmp_path / "d" / "buffer"), read_only=True)
    try:
        stats = log.stats()
        assert stats.depth == stored and stats.pending == 0  # every reading committed on stop
        assert stats.durable_seq == stats.next_seq - 1
    finally:
        log.close()


async def test_daemon_reads_ble_beacons_through_its_configuration(tmp_path: Path) -> None:
    """The [ble] section as the loader reads it, the BLE source as the daemon builds it, on
    emulated BTHome beacons (one encrypted; one configured with a wrong key)."""
    from edge.simulators.ble import DEMO_BIND_KEY, RadioWorld, berth, soil_probe

    fast = {"advertising_interval": 0.02, "update_interval": 0.25}
    async with RadioWorld(name="daemon-e2e", seed=1) as radio:
        await radio.add(soil_probe("F0:E1:D2:00:02:01", **fast))
        await radio.add(berth("F0:E1:D2:00:01:02", bind_key=DEMO_BIND_KEY, **fast))
        await radio.add(berth("F0:E1:D2:00:01:03", bind_key=DEMO_BIND_KEY, **fast))
        gateway = await radio.add_gateway("marina")
        path = tmp_path / "edge.toml"
        path.write_text(
            f'[gateway]\nid = "gw-ble"\ndata_dir = "{tmp_path / "d"}"\n'
            f'[ble]\nbackend = "{gateway.backend}"\nabsent_after = 5\n'
            '[[ble.devices]]\nsensor = "park-soil"\naddress = "F0:E1:D2:00:02:01"\nkind = "bthome"\n'
            '[[ble.devices]]\nsensor = "berth-2"\naddress = "F0:E1:D2:00:01:02"\nkind = "bthome"\n'
            f'bind_key = "{DEMO_BIND_KEY}"\n'
            '[[ble.devices]]\nsensor = "berth-3"\naddress = "F0:E1:D2:00:01:03"\nkind = "bthome"\n'
            f'bind_key = "{"00" * 16}"\n'
            '[sensors.berth-2]\nrename = { occupancy = "occupied" }\n'
        )
        config = load_config(path)
        daemon = Daemon(config, default_wiring(), SystemdNotifier({}))
        task = asyncio.create_task(daemon.run(), name="daemon-ble-e2e")
        health = daemon.health
        try:
            await asyncio.wait_for(daemon.ready.wait(), 10)
            await wait_until(lambda: health.sensors["park-soil"].samples >= 3, 15)
            await wait_until(lambda: "occupied" in health.sensors["berth-2"].values, 15)
            await wait_until(
                lambda: health.sensors["berth-3"].errors.by_reason["decryption"] >= 1, 15
            )
            assert health.sensors["berth-3"].samples == 0
            assert health.sources[config.ble.source_name].state == "up"  # type: ignore[union-attr]
        finally:
            daemon.request_stop()
            await asyncio.wait_for(task, 15)


async def test_the_uplink_is_wired_and_a_broker_down_stops_nothing(tmp_path: Path) -> None:
    import socket

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    (tmp_path / "cred").write_text("gw-up:secret\n")
    path = tmp_path / "edge.toml"
    path.write_text(
        f'[gateway]\nid = "gw-up"\ndata_dir = "{tmp_path / "d"}"\n'
        f'[uplink]\nbroker = "mqtt://127.0.0.1:{port}"\ncredentials_file = "cred"\n'
    )
    daemon = Daemon(load_config(path), default_wiring(), SystemdNotifier({}))
    task = asyncio.create_task(daemon.run(), name="daemon-uplink")
    try:
        await asyncio.wait_for(daemon.ready.wait(), 10)
        assert daemon.health.uplink is not None
        await wait_until(lambda: daemon.health.uplink().get("state") == "disconnected", 10)  # type: ignore[misc]
        uplink = daemon.health.uplink()
        assert uplink["broker"] == f"127.0.0.1:{port}" and "bytes_sent" in uplink
        assert "uplink" in daemon.supervisor.names  # supervised, but not a source:
        assert "uplink" not in daemon.health.sources and "uplink" in daemon.health.tasks
        assert uplink["crashes"] == 0  # reconnecting is not crashing
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 15)


async def test_readings_reach_a_real_broker_through_the_daemon_uplink(tmp_path: Path) -> None:
    """The uplink the daemon builds from [uplink] publishes the gateway's batches on a real
    MQTT broker (amqtt, MQTT 3.1.1), and `estran edge doctor`'s broker check talks to it."""
    import socket

    import aiomqtt
    from amqtt.broker import Broker

    from edge.doctor import Environment, check_broker
    from protocols import wire

    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    broker = Broker(
        {
            "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }
    )
    await broker.start()
    try:
        async with (
            NmeaSimulator("ttyNMEA", directory=tmp_path / "sim", interval=0.1) as nmea,
            aiomqtt.Client("127.0.0.1", port, identifier="hub-stand-in") as hub,
        ):
            await hub.subscribe(
                [(wire.topic("gw-up", "data"), 1), (wire.topic("gw-up", "state"), 1)]
            )
            path = tmp_path / "edge.toml"
            path.write_text(
                f'[gateway]\nid = "gw-up"\ndata_dir = "{tmp_path / "d"}"\n'
                f'[uplink]\nbroker = "mqtt://127.0.0.1:{port}"\nprotocol = "3.1.1"\n'
                + port_table(nmea.port_config())  # type: ignore[arg-type]
            )
            config = load_config(path)
            daemon = Daemon(config, default_wiring(), SystemdNotifier({}))
            task = asyncio.create_task(daemon.run(), name="daemon-uplink-broker")
            try:
                states = []
                async with asyncio.timeout(15):
                    async for message in hub.messages:
                        if not message.topic.matches(wire.topic("gw-up", "state")):
                            break
                        assert isinstance(message.payload, bytes)
                        states.append(wire.decode_state(message.payload))
                # the birth came first, with the daemon's footprint (HealthRegistry.footprint)
                assert states and states[0].online and states[0].footprint is not None
                assert {"rss_bytes", "cpu_s", "bytes_sent"} <= set(states[0].footprint)
                assert message.topic.matches(wire.topic("gw-up", "data"))
                assert isinstance(message.payload, bytes)
                batch = wire.decode_data(message.payload)  # what the hub's ingest will read
                assert batch.count > 0 and batch.blocks
                assert daemon.health.uplink is not None
                assert daemon.health.uplink()["state"] == "connected"
                check = await asyncio.to_thread(check_broker, config, Environment())
                assert check.status == "ok" and "accepted an MQTT 3.1.1 CONNECT" in check.reason
            finally:
                daemon.request_stop()
                await asyncio.wait_for(task, 15)
    finally:
        await broker.shutdown()
