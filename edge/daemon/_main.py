"""Start the daemon from a configuration file: what `estran edge run` and the systemd unit do."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from edge.config import DEFAULT_CONFIG, ConfigError, load_config
from edge.daemon._daemon import EX_RESTART, Daemon, Wiring
from edge.daemon._logging import setup_logging

log = logging.getLogger("estran.edge.daemon")

EX_CONFIG = 78  # sysexits.h: configuration error


def run_daemon(
    config_path: Path = DEFAULT_CONFIG,
    log_level: str | None = None,
    wiring: Wiring | None = None,
) -> int:
    """Run until SIGTERM/SIGINT. Returns the exit status: 0 after a clean stop, 75
    (EX_RESTART) after a clean stop the hub asked for to restart the daemon (`reboot`), 78
    when the configuration is refused (the errors are logged), 1 when the daemon failed."""
    setup_logging(log_level or "info")
    try:
        config = load_config(config_path)
    except ConfigError as e:
        log.error("%s", e)
        return EX_CONFIG
    setup_logging(log_level or config.gateway.log_level)
    if wiring is None:
        from edge.daemon._wiring import default_wiring

        wiring = default_wiring()
    daemon = Daemon(config, wiring)
    try:
        asyncio.run(daemon.run())
    except KeyboardInterrupt:  # a second Ctrl-C during the stop
        return 130
    except BaseException as e:
        errors = e.exceptions if isinstance(e, BaseExceptionGroup) else [e]
        for error in errors:
            log.critical("daemon failed: %s", error, exc_info=error)
        return 1
    if daemon.exit_status == EX_RESTART:
        log.info("stopped: exit %d, for systemd to start the daemon again", EX_RESTART)
    else:
        log.info("stopped")
    return daemon.exit_status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge.daemon", description=__doc__)
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    args = parser.parse_args(argv)
    return run_daemon(args.config, args.log_level)


if __name__ == "__main__":
    sys.exit(main())
