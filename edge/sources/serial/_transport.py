"""`SerialTransport`: one serial port, read and written from asyncio without threads.

pyserial opens the port and sets its line (speed, format, exclusive lock, input flush);
then the file descriptor, already non-blocking, is watched with `loop.add_reader` and
written with `os.write` (`loop.add_writer` when the driver's buffer is full). No thread and
no polling: a serial line costs nothing while it is quiet. See docs/serial.md for why this
rather than pyserial-asyncio.

A port that disappears (USB unplugged, pseudo-terminal closed) shows up as a read of 0
bytes or an EIO/ENXIO/ENODEV error: the transport marks itself lost and every pending and
later `read`/`write` raises `PortLost`.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import stat
import termios
import time
from types import TracebackType
from typing import Final

import serial

from edge.sources.serial._config import LineSettings, SerialConfigError, SerialError

MAX_BUFFER: Final = 16384  # bytes kept unread; older bytes are dropped (and counted)
READ_CHUNK: Final = 4096
SDI12_BREAK_S: Final = 0.015  # SDI-12: at least 12 ms of spacing
SDI12_MARKING_S: Final = 0.009  # then at least 8.33 ms of marking
NUL_BREAK_BAUD: Final = 300  # a NUL at 300 baud 7E1: 9 bit times (30 ms) of spacing
_PTY_MAJORS: Final = range(136, 144)  # Unix98 pseudo-terminal slaves (/dev/pts/N)


class PortUnavailable(SerialError):
    """The port cannot be opened: absent, no permission, or held by another program."""


class PortLost(SerialError):
    """The port went away while open (unplugged adapter, closed pseudo-terminal)."""


def _reason(error: BaseException) -> str:
    """The system's reason, once: pyserial wraps an OSError whose text already names the
    path ("could not open port /dev/x: [Errno 2] ... '/dev/x'")."""
    cause: BaseException | None = error
    while cause is not None:
        number = getattr(cause, "errno", None)
        if isinstance(number, int) and number > 0:
            return os.strerror(number)
        cause = cause.__cause__ or cause.__context__
    return str(error)


def is_pseudo_terminal(path: str) -> bool:
    """Whether `path` (after symlinks) is a pseudo-terminal: no break, no real line."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) in _PTY_MAJORS


def program_line(fd: int, line: LineSettings) -> None:
    """Set speed and character format on `fd`, with the input flags that go with the
    format: ISTRIP for 7 data bits, INPCK when there is a parity bit.

    On a real UART those flags are what a 7E1 or 8E1 line wants anyway (7-bit characters,
    parity errors turned into NUL rather than passed as data). On a pseudo-terminal they
    are also the only trace of the format: the Linux pty driver forces CS8 and clears
    PARENB but keeps the input flags, which is how the simulators see the format
    (docs/serial.md). Recent kernels refuse (EINVAL) a change that a pty cannot take at
    all, such as CS7 alone: that refusal is expected there and ignored.
    """
    speed = getattr(termios, f"B{line.baud}", None)
    if not isinstance(speed, int):
        raise SerialConfigError("baud", f"{line.baud} is not a standard speed")
    attrs = termios.tcgetattr(fd)
    iflag, cflag = attrs[0], attrs[2]
    iflag &= ~(termios.ISTRIP | termios.INPCK)
    cflag &= ~(termios.CSIZE | termios.PARENB | termios.PARODD | termios.CSTOPB)
    cflag |= termios.CS7 if line.bytesize == 7 else termios.CS8
    if line.bytesize == 7:
        iflag |= termios.ISTRIP
    if line.parity != "N":
        iflag |= termios.INPCK
        cflag |= termios.PARENB | (termios.PARODD if line.parity == "O" else 0)
    if line.stopbits == 2:
        cflag |= termios.CSTOPB
    cc = list(attrs[6])
    # VMIN 1: with O_NONBLOCK an empty read is then EAGAIN, and a read of 0 bytes only
    # means a hang-up. (pyserial's VMIN 0 makes "no data" and "unplugged" look alike: a
    # reader woken just before a flush would take the port for lost.)
    cc[termios.VMIN] = 1
    cc[termios.VTIME] = 0
    wanted = [iflag, attrs[1], cflag, attrs[3], speed, speed, cc]
    if wanted == attrs:
        return
    try:
        termios.tcsetattr(fd, termios.TCSANOW, wanted)
    except termios.error as e:
        if e.args[0] != errno.EINVAL:
            raise
        now = termios.tcgetattr(fd)
        ignored = termios.CSIZE | termios.PARENB
        if [now[0], now[2] & ~ignored, now[4]] != [iflag, cflag & ~ignored, speed]:
            raise


class SerialTransport:
    """An open serial port. Use as an async context manager or `open()`/`close()`.

    `read(timeout)` returns what arrived (waiting up to `timeout` for the first byte; b""
    when nothing did). `write(data)` returns once the bytes are handed to the driver and,
    with `drain=True`, once they have had the time to leave the wire at the line's speed.
    """

    def __init__(
        self,
        path: str,
        line: LineSettings,
        *,
        exclusive: bool = True,
        max_buffer: int = MAX_BUFFER,
    ) -> None:
        self.path = path
        self._line = line
        self._exclusive = exclusive
        self._max_buffer = max_buffer
        self._serial: serial.Serial | None = None
        self._fd = -1
        self._buffer = bytearray()
        self._data = asyncio.Event()
        self._lost: PortLost | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.bytes_in = 0
        self.bytes_out = 0
        self.dropped = 0  # bytes dropped because nobody read them in time
        self.last_rx = 0.0  # time.monotonic() of the last byte received
        self.last_tx = 0.0  # time.monotonic() when the last byte written left the wire

    # -- lifecycle -------------------------------------------------------------------------

    def open(self) -> None:
        if self._serial is not None:
            return
        self._loop = asyncio.get_running_loop()
        port = serial.Serial()
        port.port = self.path
        port.baudrate = self._line.baud
        # Open as 8N1 and set the format afterwards (program_line): a pty may refuse a
        # format change it cannot hold, and pyserial would then fail the whole open.
        port.bytesize = 8
        port.parity = "N"
        port.stopbits = self._line.stopbits
        port.timeout = 0
        port.write_timeout = 0
        port.exclusive = self._exclusive
        try:
            port.open()
        except (serial.SerialException, OSError, ValueError) as e:
            raise PortUnavailable(f"cannot open {self.path}: {_reason(e)}") from e
        fd = port.fileno()
        try:
            os.set_blocking(fd, False)
            program_line(fd, self._line)
        except (OSError, termios.error) as e:
            port.close()
            raise PortUnavailable(f"cannot set the line of {self.path}: {_reason(e)}") from e
        self._serial = port
        self._fd = fd
        self._lost = None
        self._buffer.clear()
        self._loop.add_reader(fd, self._on_readable)

    def close(self) -> None:
        port = self._serial
        if port is None:
            return
        self._serial = None
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._fd = -1
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()
        if self._lost is None:
            self._lost = PortLost(f"{self.path}: closed")
        self._data.set()

    async def __aenter__(self) -> SerialTransport:
        self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def is_open(self) -> bool:
        return self._serial is not None and self._lost is None

    @property
    def line(self) -> LineSettings:
        return self._line

    @property
    def is_pty(self) -> bool:
        return is_pseudo_terminal(self.path)

    def configure(self, line: LineSettings) -> None:
        """Change speed and format on the open port (the probe tries several)."""
        self._require()
        try:
            program_line(self._fd, line)
        except (OSError, termios.error) as e:
            self._mark_lost(e)
            raise PortLost(f"{self.path}: {e}") from e
        self._line = line

    def reset_input(self) -> None:
        """Forget every byte received and not yet read (in the driver too)."""
        port = self._require()
        self._buffer.clear()
        try:
            port.reset_input_buffer()
        except (serial.SerialException, OSError) as e:
            self._mark_lost(e)
            raise PortLost(f"{self.path}: {e}") from e

    # -- reading ---------------------------------------------------------------------------

    def _on_readable(self) -> None:
        try:
            data = os.read(self._fd, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as e:
            self._mark_lost(e)
            return
        if not data:
            self._mark_lost(None)
            return
        self.bytes_in += len(data)
        self.last_rx = time.monotonic()
        self._buffer += data
        excess = len(self._buffer) - self._max_buffer
        if excess > 0:
            del self._buffer[:excess]
            self.dropped += excess
        self._data.set()

    def _mark_lost(self, error: BaseException | None) -> None:
        if self._lost is None:
            reason = f"{error}" if error is not None else "device disconnected (read 0 bytes)"
            self._lost = PortLost(f"{self.path}: {reason}")
        if self._loop is not None and self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
        self._data.set()

    def _require(self) -> serial.Serial:
        if self._lost is not None:
            raise self._lost
        if self._serial is None:
            raise PortLost(f"{self.path}: not open")
        return self._serial

    def take(self) -> bytes:
        """Every byte received and not yet read, without waiting. Bytes that arrived before
        the port was lost are still handed out; then `PortLost` is raised."""
        if not self._buffer:
            self._require()
        data = bytes(self._buffer)
        self._buffer.clear()
        self._data.clear()
        return data

    async def read(self, timeout: float) -> bytes:
        """The bytes received so far, waiting up to `timeout` s for at least one (b"" if none)."""
        if not self._buffer:
            self._require()
            self._data.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(timeout, 0.0)):
                    await self._data.wait()
        return self.take()

    async def read_until_idle(self, idle: float, limit: float) -> bytes:
        """Read until the line has been quiet for `idle` seconds (at most `limit` seconds)."""
        out = bytearray()
        deadline = time.monotonic() + limit
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return bytes(out)
            chunk = await self.read(min(idle, remaining))
            if not chunk:
                return bytes(out)
            out += chunk

    # -- writing ---------------------------------------------------------------------------

    async def write(self, data: bytes, *, drain: bool = True, timeout: float = 5.0) -> None:
        """Hand `data` to the driver; with `drain`, also wait the time it takes to send it.

        The wait is computed from the line speed rather than asked of the driver: tcdrain()
        blocks the thread, and USB adapters answer it before the bytes have left anyway.
        """
        self._require()
        loop = asyncio.get_running_loop()
        view = memoryview(data)
        async with asyncio.timeout(timeout):
            while view:
                try:
                    n = os.write(self._fd, view)
                except BlockingIOError:
                    n = 0
                except OSError as e:
                    self._mark_lost(e)
                    raise PortLost(f"{self.path}: {e}") from e
                view = view[n:]
                if view:
                    ready = loop.create_future()
                    loop.add_writer(self._fd, ready.set_result, None)
                    try:
                        await ready
                    finally:
                        if self._fd >= 0:
                            loop.remove_writer(self._fd)
                    self._require()
        self.bytes_out += len(data)
        airtime = self._line.transfer_time(len(data))
        self.last_tx = time.monotonic() + airtime
        if drain:
            await asyncio.sleep(airtime)

    async def send_break(self, method: str = "auto", duration: float = SDI12_BREAK_S) -> None:
        """Hold the line spacing for `duration`, then marking (an SDI-12 wake-up).

        ``break`` sets the break condition (TIOCSBRK) and clears it after `duration`;
        ``nul`` sends a NUL character at 300 baud in the same format (30 ms of spacing);
        ``auto`` uses ``nul`` on pseudo-terminals, which cannot carry a break, else ``break``.
        """
        if method == "auto":
            method = "nul" if self.is_pty else "break"
        port = self._require()
        if method == "break":
            try:
                port.break_condition = True
                await asyncio.sleep(duration)
                port.break_condition = False
            except (serial.SerialException, OSError) as e:
                self._mark_lost(e)
                raise PortLost(f"{self.path}: {e}") from e
        else:
            line = self._line
            slow = LineSettings(NUL_BREAK_BAUD, line.bytesize, line.parity, line.stopbits)
            self.configure(slow)
            try:
                await self.write(b"\x00", drain=True)
                await asyncio.sleep(0.005)
            finally:
                if self.is_open:
                    self.configure(line)
        await asyncio.sleep(SDI12_MARKING_S)

    async def wait_silence(self, gap: float) -> None:
        """Wait until nothing was sent or received for `gap` seconds (Modbus t3.5)."""
        now = time.monotonic()
        quiet_since = max(self.last_rx, self.last_tx)
        if now - quiet_since < gap:
            await asyncio.sleep(gap - (now - quiet_since))


__all__ = [
    "PortLost",
    "PortUnavailable",
    "SerialTransport",
    "is_pseudo_terminal",
    "program_line",
]
