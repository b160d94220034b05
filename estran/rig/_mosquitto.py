"""A private Mosquitto: its own port and configuration, started and killed by the rig.

The binary is $ESTRAN_MOSQUITTO (default /usr/sbin/mosquitto). Without a configuration of the
caller's, it listens on 127.0.0.1:port, anonymous, no persistence; `extra` lines are appended
(limits, a password file, an ACL). With `conf`, that file is used as it is: it must listen on
`port`.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from estran.rig._child import Child
from estran.rig._errors import RigError, Unavailable
from estran.rig._ports import LOOPBACK, free_port

MOSQUITTO = os.environ.get("ESTRAN_MOSQUITTO", "/usr/sbin/mosquitto")
READY_S = 10.0


def mosquitto_binary() -> str:
    """The mosquitto program, or Unavailable saying where it was looked for."""
    found = MOSQUITTO if Path(MOSQUITTO).exists() else shutil.which(MOSQUITTO)
    if not found:
        raise Unavailable(f"mosquitto not found at {MOSQUITTO} (set ESTRAN_MOSQUITTO)")
    return found


class PrivateMosquitto(Child):
    """Mosquitto on `port` (default: a free one) of 127.0.0.1; `url` is mqtt://127.0.0.1:port.

    `start` returns once it accepts connections (RigError with its log otherwise); `kill` is a
    broker crash, `start` again its restart on the same port."""

    def __init__(
        self,
        workdir: Path,
        port: int | None = None,
        *,
        conf: Path | None = None,
        extra: Sequence[str] = (),
        name: str = "mosquitto",
    ) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        if conf is None:
            workdir.mkdir(parents=True, exist_ok=True)
            conf = workdir / f"{name}-{self.port}.conf"
            lines = [
                f"listener {self.port} {LOOPBACK}",
                "allow_anonymous true",
                "persistence false",
                "max_queued_messages 100000",
                "set_tcp_nodelay true",
                "log_type error",
                "log_type warning",
                "log_dest stderr",
                *extra,
            ]
            conf.write_text("\n".join(lines) + "\n")
        self.conf = conf
        super().__init__(name, [MOSQUITTO, "-c", str(conf)], workdir / f"{name}-{self.port}.log")

    @property
    def url(self) -> str:
        return f"mqtt://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self.argv[0] = mosquitto_binary()
        await super().start()
        deadline = time.monotonic() + READY_S
        while True:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(LOOPBACK, self.port), 1)
                writer.close()
                return
            except (OSError, TimeoutError):
                if not self.alive() or time.monotonic() > deadline:
                    await self.stop(2.0)
                    raise RigError(
                        f"mosquitto did not listen on {self.port} within {READY_S:g} s:\n"
                        + self.tail()
                    ) from None
                await asyncio.sleep(0.05)


__all__ = ["MOSQUITTO", "PrivateMosquitto", "mosquitto_binary"]
