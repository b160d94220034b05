"""A bare MQTT 3.1.1 CONNECT/CONNACK exchange over a plain socket: does the broker accept
this gateway's credentials? (No client library: a dozen bytes each way, and the doctor must
work even when aiomqtt's own connection logic is what is being debugged.)"""

from __future__ import annotations

import contextlib
import socket
import ssl
import struct

from edge.errors import EdgeError

CONNACK_REASONS = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "client identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("!H", len(raw)) + raw


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def connect_packet(
    client_id: str, username: str | None = None, password: str | None = None, keepalive: int = 10
) -> bytes:
    flags = 0x02  # clean session
    payload = _string(client_id)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    variable = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    body = variable + payload
    return bytes([0x10]) + _remaining_length(len(body)) + body


DISCONNECT = b"\xe0\x00"


class MqttProbeError(EdgeError):
    """The exchange failed; `stage` is "connect" (TCP), "tls" (the handshake) or "mqtt"
    (the protocol)."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage


def probe_broker(
    host: str,
    port: int,
    client_id: str,
    username: str | None = None,
    password: str | None = None,
    timeout: float = 5.0,
    tls: ssl.SSLContext | None = None,
) -> int:
    """The CONNACK return code (0: accepted). Raises MqttProbeError when there is none.
    `tls`: the TLS handshake first (mqtts://), the server's certificate and `host` checked
    as `tls` says."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as e:
        raise MqttProbeError("connect", e.strerror or str(e) or type(e).__name__) from e
    if tls is not None:
        try:
            sock = tls.wrap_socket(sock, server_hostname=host)
        except ssl.SSLCertVerificationError as e:
            sock.close()
            raise MqttProbeError("tls", e.verify_message or e.reason or str(e)) from e
        except (ssl.SSLError, OSError) as e:
            sock.close()
            reason = getattr(e, "reason", None) or e.strerror or str(e) or type(e).__name__
            raise MqttProbeError("tls", reason) from e
    with sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(connect_packet(client_id, username, password))
            answer = b""
            while len(answer) < 4:
                chunk = sock.recv(4 - len(answer))
                if not chunk:
                    raise MqttProbeError("mqtt", "the broker closed the connection without CONNACK")
                answer += chunk
        except TimeoutError as e:
            raise MqttProbeError("mqtt", f"no CONNACK within {timeout:g} s") from e
        except OSError as e:
            raise MqttProbeError("mqtt", e.strerror or str(e)) from e
        if answer[0] != 0x20 or answer[1] != 2:
            raise MqttProbeError("mqtt", f"not an MQTT CONNACK: {answer.hex()}")
        code = answer[3]
        if code == 0:
            with contextlib.suppress(OSError):
                sock.sendall(DISCONNECT)
        return code


__all__ = ["CONNACK_REASONS", "MqttProbeError", "connect_packet", "probe_broker"]
