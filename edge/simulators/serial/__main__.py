"""Run serial simulators, or send one of them a fault.

    python -m edge.simulators.serial --spec linky-historique --spec modbus,devices=sdm630@1+soil@2
    python -m edge.simulators.serial inject ttyLINKY0 unplug --seconds 5
    python -m edge.simulators.serial kinds

The runner prints where each simulator listens (and, with --config, the gateway
configuration for them as JSON), then runs until Ctrl-C or --duration seconds. Faults come
on the control socket (default DIR/control.sock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys

from edge.simulators.serial._base import DEFAULT_DIRECTORY, FAULTS, SerialSimulator
from edge.simulators.serial._control import ControlServer, send_request
from edge.simulators.serial._factory import KINDS, SpecError, parse_spec


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge.simulators.serial",
        description="Serial sensor simulators on pseudo-terminals.",
        epilog="Other commands: 'inject SIM FAULT [--count N] [--seconds S]', 'kinds'.",
    )
    parser.add_argument(
        "--spec",
        action="append",
        required=True,
        metavar="KIND[,key=value...]",
        help="a simulator to run (repeat); 'kinds' lists them",
    )
    parser.add_argument("--dir", default=DEFAULT_DIRECTORY, help="where the symlinks go")
    parser.add_argument("--control", help="control socket (default: DIR/control.sock)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument(
        "--config", action="store_true", help="print the gateway configuration as JSON"
    )
    return parser


def _inject_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge.simulators.serial inject")
    parser.add_argument("sim", help="simulator name (ttyLINKY0...)")
    parser.add_argument("fault", choices=FAULTS)
    parser.add_argument("--count", type=int, default=1, help="noise bytes or bad frames")
    parser.add_argument("--seconds", type=float, help="silence or unplug duration")
    parser.add_argument("--control", default=os.path.join(DEFAULT_DIRECTORY, "control.sock"))
    return parser


async def run(
    simulators: list[SerialSimulator], control: str, duration: float | None, config: bool
) -> None:
    by_name = {s.name: s for s in simulators}
    server = ControlServer(control, by_name)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[SerialSimulator] = []
    try:
        for sim in simulators:
            await sim.start()
            started.append(sim)
            print(f"{sim.name:14} {sim.describe()} -> {os.path.realpath(sim.path)}", flush=True)
        await server.start()
        print(f"control socket {control}", flush=True)
        if config:
            print(json.dumps([s.port_config() for s in simulators], indent=2), flush=True)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(duration):
                await stop.wait()
    finally:
        await server.stop()
        for sim in started:
            with contextlib.suppress(RuntimeError):
                await sim.stop()


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["kinds"]:
        for kind, text in KINDS.items():
            print(f"{kind:18} {text}")
        return 0
    if args[:1] == ["inject"]:
        ns = _inject_parser().parse_args(args[1:])
        request: dict[str, object] = {"sim": ns.sim, "fault": ns.fault, "count": ns.count}
        if ns.seconds is not None:
            request["seconds"] = ns.seconds
        try:
            reply = asyncio.run(send_request(ns.control, request))
        except (OSError, TimeoutError, ValueError) as e:
            print(f"error: {ns.control}: {e}", file=sys.stderr)
            return 1
        print(json.dumps(reply))
        return 0 if reply.get("ok") else 1
    ns = _run_parser().parse_args(args)
    try:
        simulators = [parse_spec(spec, ns.dir) for spec in ns.spec]
    except SpecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    names = [s.name for s in simulators]
    if len(set(names)) != len(names):
        print("error: two simulators with one name: add name=... to a spec", file=sys.stderr)
        return 2
    control = ns.control or os.path.join(ns.dir, "control.sock")
    asyncio.run(run(simulators, control, ns.duration, ns.config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
