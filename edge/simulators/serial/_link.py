"""The simulated wire: a pseudo-terminal pair, a stable symlink, and the line physics.

The simulator holds the master side; the program under test opens the slave through a
stable symlink (``/tmp/estran-sim/ttyLINKY0 -> /dev/pts/7``), exactly as it would open
``/dev/ttyUSB0``. Unplugging closes the master (the slave reads EOF/EIO, as a pulled USB
adapter does) and removes the symlink; replugging opens a new pair behind the same path.

A pseudo-terminal has no speed and no character format, so the link models them from what
the program set on its side (docs/serial.md, "line physics"):

- the speed is in the slave's termios (tcgetattr works from the master side);
- the format is not: Linux forces CS8 and clears PARENB on ptys. What survives are the
  input flags that go with a format, which edge.sources.serial sets (ISTRIP for 7 data bits, INPCK
  when there is parity, PARODD for odd parity, CSTOPB for two stop bits);
- bytes sent at one speed and read at another arrive as garbage; a 7-bit character with
  its parity bit is sent as 8 bits with the parity in bit 7, so a reader set to 8N1 sees
  the parity bits and one set to 7 bits (ISTRIP) sees them cleared, as on a real line;
- bytes the program sends are understood by the simulated device only when speed, data
  bits and parity match its own; a NUL always gets through as a break (continuous spacing
  is a break at any speed: this is how the SDI-12 wake-up crosses a pty, which cannot
  carry a real break).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import termios
import time
import tty
from dataclasses import dataclass
from typing import Final

TICK: Final = 0.02  # seconds between paced writes
MAX_PENDING: Final = 256  # incoming chunks waiting for the device (bounded)

_SPEEDS: Final[dict[int, int]] = {
    getattr(termios, f"B{rate}"): rate
    for rate in (
        50,
        75,
        110,
        134,
        150,
        200,
        300,
        600,
        1200,
        1800,
        2400,
        4800,
        9600,
        19200,
        38400,
        57600,
        115200,
        230400,
    )
}


@dataclass(frozen=True, slots=True)
class LineFormat:
    """Speed and character format the simulated device speaks (``2400 8E1``)."""

    baud: int
    bytesize: int = 8
    parity: str = "N"
    stopbits: int = 1

    @property
    def char_bits(self) -> int:
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_time(self) -> float:
        return self.char_bits / self.baud

    def __str__(self) -> str:
        return f"{self.baud} {self.bytesize}{self.parity}{self.stopbits}"

    @classmethod
    def from_termios(cls, attrs: list[object]) -> LineFormat:
        iflag, cflag, ospeed = attrs[0], attrs[2], attrs[5]
        assert isinstance(iflag, int) and isinstance(cflag, int) and isinstance(ospeed, int)
        parity = "N"
        if iflag & termios.INPCK:
            parity = "O" if cflag & termios.PARODD else "E"
        return cls(
            baud=_SPEEDS.get(ospeed, 0),
            bytesize=7 if iflag & termios.ISTRIP else 8,
            parity=parity,
            stopbits=2 if cflag & termios.CSTOPB else 1,
        )


def with_parity(data: bytes, line: LineFormat) -> bytes:
    """7-bit characters with their parity bit in bit 7 (what an 8N1 reader sees)."""
    if line.bytesize != 7 or line.parity == "N":
        return data
    odd = line.parity == "O"
    out = bytearray()
    for b in data:
        b &= 0x7F
        ones = bin(b).count("1")
        if (ones % 2 == 1) != odd:  # even parity: make the count even; odd: make it odd
            b |= 0x80
        out.append(b)
    return bytes(out)


def readable_by(sender: LineFormat, reader: LineFormat) -> bool:
    """Whether a reader set to `reader` gets `sender`'s characters (not garbage).

    The speeds must match. A reader that checks parity (INPCK) needs the same parity; a
    reader without parity takes the sender's parity bit as a data bit (7E1 read as 8N1) or
    as its stop bit (8E1 read as 8N1), and the characters come through.
    """
    if sender.baud != reader.baud:
        return False
    if reader.parity != "N":
        return reader.parity == sender.parity and reader.bytesize == sender.bytesize
    sender_data = sender.bytesize + (0 if sender.parity == "N" else 1)
    return reader.bytesize <= sender_data


def understood_by(sender: LineFormat, device: LineFormat) -> bool:
    """Whether the device understands what the program sent: speed, data bits and parity
    all match (a slave checks parity; stop bits do not matter to a receiver)."""
    return (sender.baud, sender.bytesize, sender.parity) == (
        device.baud,
        device.bytesize,
        device.parity,
    )


class PtyLink:
    """One pseudo-terminal pair behind the stable path `path`.

    `send(data)` writes at the line's pace (`pace` times real speed; 0: at once);
    `receive(timeout)` returns the next chunk the device understood (b"" on timeout).
    While unplugged, what the device sends is lost and nothing arrives.
    """

    def __init__(self, path: str, line: LineFormat, pace: float, rng: random.Random) -> None:
        self.path = path
        self.line = line
        self.pace = pace
        self._rng = rng
        self._master = -1
        self._slave = -1
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue(MAX_PENDING)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._garbage_debt = 0.0
        self.stats = {"bytes_sent": 0, "bytes_lost": 0, "line_errors": 0, "bytes_received": 0}

    # -- plugging --------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._master >= 0

    @property
    def device_path(self) -> str | None:
        """The /dev/pts/N behind the symlink, or None while unplugged."""
        return os.ttyname(self._slave) if self._slave >= 0 else None

    def plug(self) -> None:
        if self.connected:
            return
        self._loop = asyncio.get_running_loop()
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no line editing until the program sets its line
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        directory = os.path.dirname(self.path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        os.symlink(os.ttyname(slave), temporary)
        os.replace(temporary, self.path)
        self._loop.add_reader(master, self._on_readable)

    def unplug(self) -> None:
        if not self.connected:
            return
        if self._loop is not None:
            self._loop.remove_reader(self._master)
        target = self.device_path
        with contextlib.suppress(OSError):
            if target is not None and os.readlink(self.path) == target:
                os.unlink(self.path)
        os.close(self._master)
        os.close(self._slave)
        self._master = self._slave = -1
        while not self._incoming.empty():
            self._incoming.get_nowait()

    # -- the line as the program set it ----------------------------------------------------

    def peer_format(self) -> LineFormat | None:
        """What the program set on its side of the line (None while unplugged)."""
        if self._slave < 0:
            return None
        try:
            return LineFormat.from_termios(termios.tcgetattr(self._slave))
        except termios.error:
            return None

    # -- receiving -------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return  # EIO: no program has the slave open (we keep ours, so only briefly)
        if not data:
            return
        self.stats["bytes_received"] += len(data)
        peer = self.peer_format()
        if peer is not None and not understood_by(peer, self.line):
            breaks = data.count(0)
            self.stats["line_errors"] += len(data) - breaks
            data = b"\x00" * breaks
            if not data:
                return
        if self.line.bytesize == 7:
            data = bytes(b & 0x7F for b in data)
        try:
            self._incoming.put_nowait(data)
        except asyncio.QueueFull:
            self.stats["line_errors"] += len(data)

    async def receive(self, timeout: float) -> bytes:
        """The next chunk the device understood, waiting up to `timeout` s (b"" if none)."""
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                return await self._incoming.get()
        except TimeoutError:
            return b""

    def pending(self) -> bytes:
        """Every chunk already received, without waiting."""
        out = bytearray()
        while not self._incoming.empty():
            out += self._incoming.get_nowait()
        return bytes(out)

    # -- sending ---------------------------------------------------------------------------

    def _as_heard(self, data: bytes) -> bytes:
        """`data` as the program's side of the line receives it."""
        peer = self.peer_format()
        if peer is None or peer.baud == 0:
            return with_parity(data, self.line)
        if readable_by(self.line, peer):
            return with_parity(data, self.line)
        # Wrong speed or format: the reader's UART assembles characters from the wrong
        # bits. About as many characters as fit in the same time at the reader's speed.
        self._garbage_debt += len(data) * self.line.char_time / peer.char_time
        count = int(self._garbage_debt)
        self._garbage_debt -= count
        return bytes(self._rng.randrange(256) for _ in range(count))

    def _write(self, data: bytes) -> None:
        if not self.connected:
            self.stats["bytes_lost"] += len(data)
            return
        heard = self._as_heard(data)
        try:
            os.write(self._master, heard)
        except BlockingIOError:
            # Nobody reads the other side and its buffer is full: the bytes fall off the
            # line, as they would on a real one. Make room for the next ones.
            with contextlib.suppress(termios.error):
                termios.tcflush(self._slave, termios.TCIFLUSH)
            self.stats["bytes_lost"] += len(data)
            return
        except OSError:
            self.stats["bytes_lost"] += len(data)
            return
        self.stats["bytes_sent"] += len(data)

    async def send(self, data: bytes) -> None:
        """Send `data` at the line's speed (scaled by `pace`)."""
        if self.pace <= 0:
            self._write(data)
            return
        rate = self.pace / self.line.char_time  # characters per second
        per_tick = max(1, int(rate * TICK))
        start = time.monotonic()
        sent = 0
        while sent < len(data):
            chunk = data[sent : sent + per_tick]
            self._write(chunk)
            sent += len(chunk)
            due = start + sent / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    def airtime(self, nbytes: int) -> float:
        """Seconds `nbytes` characters take at this line's pace."""
        if self.pace <= 0:
            return 0.0
        return nbytes * self.line.char_time / self.pace


__all__ = ["LineFormat", "PtyLink", "readable_by", "understood_by", "with_parity"]
