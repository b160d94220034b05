"""Run a radio world in its own process: ``python -m edge.simulators.ble``.

By default: the demo territory's BLE sensors (`territory()`) and two gateways, ``marina``
and ``park``, each hearing its zone, on free TCP ports of 127.0.0.1. When ready it prints
one JSON line on stdout::

    {"gateways": {"marina": {"backend": "bumble:tcp-client:127.0.0.1:40123",
                             "transport": "tcp-client:127.0.0.1:40123", "zones": ["marina"]},
                  ...},
     "sensors": [{"sensor": "marina-berth-01", "zone": "marina", "kind": "bthome",
                  "address": "F0:E1:D2:00:01:01", "config": {...ble.devices entry...}}, ...]}

then runs until SIGINT/SIGTERM (or ``--seconds``). With ``--control``, it reads commands
from stdin, one per line, and answers each with a JSON line ``{"ok": true}`` or
``{"ok": false, "error": "..."}``:

    vanish ADDRESS | reappear ADDRESS | refuse ADDRESS on|off | unplug GATEWAY | replug GATEWAY
"""

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys

from edge.simulators.ble._miflora import MiFloraSensor
from edge.simulators.ble._territory import territory
from edge.simulators.ble._world import RadioWorld

log = logging.getLogger("edge.simulators.ble")


def _gateway_arg(text: str) -> tuple[str, str, int, list[str] | None]:
    """``NAME[=HOST:PORT][@ZONE,ZONE]`` -> (name, host, port, zones)."""
    zones: list[str] | None = None
    if "@" in text:
        text, _, zone_text = text.partition("@")
        zones = [z for z in zone_text.split(",") if z]
    name, _, where = text.partition("=")
    host, port = "127.0.0.1", 0
    if where:
        host, _, port_text = where.rpartition(":")
        try:
            port = int(port_text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"bad port in {text!r}") from e
        host = host or "127.0.0.1"
    if not name:
        raise argparse.ArgumentTypeError("a gateway needs a name")
    return name, host, port, zones


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m edge.simulators.ble",
        description="Emulated BLE sensors and gateway HCI controllers (bumble).",
    )
    parser.add_argument(
        "--gateway",
        "-g",
        action="append",
        type=_gateway_arg,
        metavar="NAME[=HOST:PORT][@ZONES]",
        help="a gateway controller on TCP (default: marina@marina and park@park, free ports)",
    )
    parser.add_argument("--advertising-interval", type=float, default=1.0, metavar="S")
    parser.add_argument("--update-interval", type=float, default=5.0, metavar="S")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=60.0,
        metavar="S",
        help="the Mi Flora poll interval put in the printed configuration",
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    parser.add_argument("--control", action="store_true", help="read fault commands on stdin")
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser.parse_args(argv)


async def _control(world: RadioWorld, line: str) -> None:
    words = line.split()
    if not words:
        raise ValueError("empty command")
    command, args = words[0], words[1:]
    if command in ("vanish", "reappear", "refuse") and args:
        sensor = world.sensors.get(args[0].upper())
        if sensor is None:
            raise ValueError(f"no sensor at {args[0]}")
        if command == "vanish":
            await sensor.vanish()
        elif command == "reappear":
            await sensor.reappear()
        else:
            if (
                not isinstance(sensor, MiFloraSensor)
                or len(args) != 2
                or args[1] not in ("on", "off")
            ):
                raise ValueError("refuse ADDRESS on|off, for a Mi Flora")
            sensor.refuse_connections = args[1] == "on"
        return
    if command in ("unplug", "replug") and len(args) == 1:
        if args[0] not in world.gateways:
            raise ValueError(f"no gateway {args[0]}")
        if command == "unplug":
            await world.unplug(args[0])
        else:
            world.replug(args[0])
        return
    raise ValueError(f"unknown command {line.strip()!r}")


async def _read_commands(world: RadioWorld) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=4096)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        try:
            await _control(world, line.decode("utf-8", "replace"))
            answer: dict[str, object] = {"ok": True}
        except (ValueError, TimeoutError) as e:
            answer = {"ok": False, "error": str(e)}
        print(json.dumps(answer), flush=True)


async def main(args: argparse.Namespace) -> None:
    gateways = args.gateway or [
        ("marina", "127.0.0.1", 0, ["marina"]),
        ("park", "127.0.0.1", 0, ["park"]),
    ]
    sensors = territory(
        advertising_interval=args.advertising_interval,
        update_interval=args.update_interval,
        poll_interval=args.poll_interval,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with RadioWorld(name="territory") as world:
        await world.add_all(t.sensor for t in sensors)
        ports = [
            await world.add_gateway(name, zones=zones, host=host, port=port)
            for name, host, port, zones in gateways
        ]
        ready = {
            "gateways": {
                p.name: {
                    "backend": p.backend,
                    "transport": p.transport,
                    "zones": sorted(p.zones) if p.zones is not None else None,
                }
                for p in ports
            },
            "sensors": [
                {
                    "sensor": t.sensor_id,
                    "zone": t.zone,
                    "kind": t.sensor.kind,
                    "address": t.sensor.address,
                    "config": t.config(),
                }
                for t in sensors
            ],
        }
        print(json.dumps(ready), flush=True)
        control = (
            asyncio.create_task(_read_commands(world), name="ble-sim:control")
            if args.control
            else None
        )
        try:
            if args.seconds is None:
                await stop.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(args.seconds):
                        await stop.wait()
        finally:
            if control is not None:
                control.cancel()
                await asyncio.wait([control], timeout=2.0)


def run(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args))


if __name__ == "__main__":
    run()
