"""The master side of wired M-Bus: request builders and a sans-IO multi-telegram reader.

Builders return the bytes to write on the bus. FCB (frame count bit): after SND_NKE the
slave clears its FCB state; the master sends its next FCV frame with FCB=1 and toggles FCB
after every exchange that succeeded, and repeats a request unchanged (same FCB) when the
answer was missing or broken. A slave answering a REQ_UD2 with a toggled FCB sends the next
telegram of a multi-telegram answer; with the same FCB it repeats the last one.
"""

from protocols.errors import UNSUPPORTED, LocalProtocolError, RemoteProtocolError
from protocols.mbus.frames import (
    ADDRESS_SECONDARY,
    FCB,
    KIND_ACK,
    REQ_UD1,
    REQ_UD2,
    SND_NKE,
    SND_UD,
    Frame,
    long_frame,
    short_frame,
)
from protocols.mbus.records import Record
from protocols.mbus.telegram import (
    CI_APPLICATION_RESET,
    CI_DATA_SEND,
    CI_SELECT,
    Telegram,
    decode_response,
)


def _address(address: "int") -> "int":
    if not isinstance(address, int) or isinstance(address, bool) or not 0 <= address <= 0xFF:
        raise LocalProtocolError("address must be an int 0..255, got %r" % (address,))
    return address


def snd_nke(address: "int") -> "bytes":
    """SND_NKE: link reset of the slave at `address` (0xFD: the selected slave)."""
    return short_frame(SND_NKE, _address(address)).encode()


def req_ud2(address: "int", fcb: "bool" = False) -> "bytes":
    """REQ_UD2: request class 2 (user) data; C = 0x5B, or 0x7B with the FCB set."""
    return short_frame(REQ_UD2 | (FCB if fcb else 0), _address(address)).encode()


def req_ud1(address: "int", fcb: "bool" = False) -> "bytes":
    """REQ_UD1: request class 1 (alarm) data; C = 0x5A, or 0x7A with the FCB set."""
    return short_frame(REQ_UD1 | (FCB if fcb else 0), _address(address)).encode()


def snd_ud(address: "int", ci: "int", data: "bytes" = b"", fcb: "bool" = False) -> "bytes":
    """SND_UD: send user data; C = 0x53, or 0x73 with the FCB set."""
    if not isinstance(ci, int) or not 0 <= ci <= 0xFF:
        raise LocalProtocolError("CI must be an int 0..255, got %r" % (ci,))
    return long_frame(SND_UD | (FCB if fcb else 0), _address(address), ci, bytes(data)).encode()


def _secondary_id(id_: "int | str") -> "bytes":
    """8 BCD digits, least significant byte first; 'F' digits are wildcards."""
    if isinstance(id_, bool) or not isinstance(id_, (int, str)):
        raise LocalProtocolError("id must be an int or 8 digits, got %r" % (id_,))
    if isinstance(id_, int):
        if not 0 <= id_ <= 99999999:
            raise LocalProtocolError("id must be 0..99999999, got %d" % id_)
        text = "%08d" % id_
    else:
        text = id_.upper()
        if len(text) != 8 or any(c not in "0123456789F" for c in text):
            raise LocalProtocolError("id must be 8 digits 0-9 or F (wildcard), got %r" % id_)
    return bytes([int(text[i : i + 2], 16) for i in (6, 4, 2, 0)])


def _manufacturer(code: "str | None") -> "bytes":
    if code is None:
        return b"\xff\xff"
    if (
        not isinstance(code, str)
        or len(code) != 3
        or not all("A" <= c <= "Z" for c in code.upper())
    ):
        raise LocalProtocolError("manufacturer must be 3 letters, got %r" % (code,))
    text = code.upper()
    value = ((ord(text[0]) - 64) << 10) | ((ord(text[1]) - 64) << 5) | (ord(text[2]) - 64)
    return bytes([value & 0xFF, value >> 8])


def _optional_byte(value: "int | None", what: "str") -> "int":
    if value is None:
        return 0xFF
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
        raise LocalProtocolError("%s must be an int 0..255 or None, got %r" % (what, value))
    return value


def select_secondary(
    id_: "int | str",
    manufacturer: "str | None" = None,
    version: "int | None" = None,
    medium: "int | None" = None,
    fcb: "bool" = True,
) -> "bytes":
    """SND_UD to 0xFD with CI 0x52: select the slave by secondary address. None (and 'F'
    digits in the id) are wildcards. The slave answers E5 and then listens on 0xFD."""
    data = (
        _secondary_id(id_)
        + _manufacturer(manufacturer)
        + bytes([_optional_byte(version, "version"), _optional_byte(medium, "medium")])
    )
    return snd_ud(ADDRESS_SECONDARY, CI_SELECT, data, fcb)


def set_primary_address(address: "int", new_address: "int", fcb: "bool" = True) -> "bytes":
    """SND_UD with CI 0x51 and the record 01 7A <new address>."""
    return snd_ud(address, CI_DATA_SEND, bytes([0x01, 0x7A, _address(new_address)]), fcb)


def application_reset(address: "int", fcb: "bool" = True) -> "bytes":
    """SND_UD with CI 0x50: reset at application level (e.g. restart the telegram cycle)."""
    return snd_ud(address, CI_APPLICATION_RESET, b"", fcb)


# Reader states.
_IDLE = "idle"
_RESET = "reset"
_SELECT = "select"
_REQUEST = "request"
_DONE = "done"
_FAILED = "failed"


class MultiTelegramReader:
    """Reads every telegram of one slave: SND_NKE (unless reset=False), the secondary
    selection when `select` is given, then REQ_UD2 while the last telegram ends with DIF 0x1F
    (more records follow). `select` is (id, manufacturer, version, medium) as for
    `select_secondary`; the slave is then addressed as 0xFD.

    Sans-IO: `start()` returns the first bytes to send; give each answer to
    `receive_frame()` (it returns the next bytes to send, or None when finished), and call
    `timeout()` when no answer came (it returns the request to repeat, same FCB, or None
    when the retries are spent). Telegrams are in `telegrams`.
    """

    __slots__ = (
        "_fcb",
        "_last",
        "_max_telegrams",
        "_reset",
        "_retries",
        "_select",
        "_state",
        "_tries",
        "address",
        "telegrams",
    )

    def __init__(
        self,
        address: "int" = ADDRESS_SECONDARY,
        reset: "bool" = True,
        select: "tuple[int | str, str | None, int | None, int | None] | None" = None,
        max_telegrams: "int" = 16,
        retries: "int" = 2,
    ) -> "None":
        self.address = _address(address)
        if select is not None:
            self.address = ADDRESS_SECONDARY
            select_secondary(*select)  # validate now: LocalProtocolError on misuse
        if not isinstance(max_telegrams, int) or max_telegrams < 1:
            raise LocalProtocolError("max_telegrams must be an int >= 1")
        if not isinstance(retries, int) or retries < 0:
            raise LocalProtocolError("retries must be an int >= 0")
        self._reset = bool(reset)
        self._select = select
        self._max_telegrams = max_telegrams
        self._retries = retries
        self._state = _IDLE
        self._fcb = True
        self._last = b""
        self._tries = 0
        self.telegrams: "list[Telegram]" = []

    @property
    def done(self) -> "bool":
        return self._state in (_DONE, _FAILED)

    @property
    def failed(self) -> "bool":
        return self._state == _FAILED

    @property
    def fcb(self) -> "bool":
        """The FCB the next request will carry."""
        return self._fcb

    def records(self) -> "list[Record]":
        """The records of every telegram read so far, in order."""
        out: "list[Record]" = []
        for telegram in self.telegrams:
            out.extend(telegram.records)
        return out

    def start(self) -> "bytes":
        if self._state != _IDLE:
            raise LocalProtocolError("the reader has already started")
        self._fcb = True  # after SND_NKE the first FCV frame carries FCB=1
        if self._reset:
            return self._send(_RESET, snd_nke(self.address))
        return self._after_reset()

    def _after_reset(self) -> "bytes":
        if self._select is not None:
            id_, manufacturer, version, medium = self._select
            return self._send(
                _SELECT, select_secondary(id_, manufacturer, version, medium, self._fcb)
            )
        return self._send(_REQUEST, req_ud2(self.address, self._fcb))

    def _send(self, state: "str", data: "bytes") -> "bytes":
        self._state = state
        self._last = data
        self._tries = 0
        return data

    def timeout(self) -> "bytes | None":
        """No (valid) answer came: the request to repeat, or None once retries are spent."""
        if self.done or self._state == _IDLE:
            raise LocalProtocolError("no request is waiting for an answer")
        if self._tries >= self._retries:
            self._state = _FAILED
            return None
        self._tries += 1
        return self._last

    def receive_frame(self, frame: "Frame") -> "bytes | None":
        """Handle the answer to the last request; return the next bytes to send or None.

        A broken or unexpected answer raises RemoteProtocolError: the caller may then call
        `timeout()` to repeat the request."""
        if self.done or self._state == _IDLE:
            raise LocalProtocolError("no request is waiting for an answer")
        if self._state == _RESET:
            if frame.kind != KIND_ACK:
                raise RemoteProtocolError(UNSUPPORTED, "expected E5 after SND_NKE, got %r" % frame)
            return self._after_reset()
        if self._state == _SELECT:
            if frame.kind != KIND_ACK:
                raise RemoteProtocolError(
                    UNSUPPORTED, "expected E5 after selection, got %r" % frame
                )
            self._fcb = not self._fcb
            return self._send(_REQUEST, req_ud2(self.address, self._fcb))
        telegram = decode_response(frame)
        self.telegrams.append(telegram)
        self._fcb = not self._fcb
        if telegram.more_records_follow and len(self.telegrams) < self._max_telegrams:
            return self._send(_REQUEST, req_ud2(self.address, self._fcb))
        self._state = _DONE
        return None


__all__ = [
    "MultiTelegramReader",
    "application_reset",
    "req_ud1",
    "req_ud2",
    "select_secondary",
    "set_primary_address",
    "snd_nke",
    "snd_ud",
]
