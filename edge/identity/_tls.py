"""The one TLS client context of the gateway towards its hub: enrollment over HTTPS, the
fleet link and the data uplink over MQTT (mqtts://), and `estran edge doctor`.

The server's certificate is verified against the hub's CA (`estran fleet tls init`, kept at
enrollment as DATA/hub-ca.crt) or, without one, the system's CAs; its host name is checked.
There is no insecure mode.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from edge.identity._errors import IdentityError

HUB_CA_FILE = "hub-ca.crt"  # the hub's CA (demo TLS), for the gateway's MQTT over TLS


class CAFileError(IdentityError):
    """The CA file cannot be read or holds no CA certificate."""


def hub_tls_context(ca_file: Path | None = None) -> ssl.SSLContext:
    """A client context that verifies the hub's certificate and host name against
    `ca_file` (None: the system's CAs). Raises CAFileError when `ca_file` is unusable."""
    try:
        context = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    except (OSError, ssl.SSLError, ValueError) as e:
        raise CAFileError(
            f"{ca_file}: not a CA certificate ({getattr(e, 'strerror', None) or e})"
        ) from e
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def enrolled_ca(data_dir: Path) -> Path | None:
    """The hub's CA kept by `estran edge enroll --ca` in `data_dir`, if there is one."""
    path = Path(data_dir) / HUB_CA_FILE
    return path if path.is_file() else None


def tls_failure(error: BaseException) -> ssl.SSLError | None:
    """The TLS error behind `error` (aiomqtt raises its own error `from None`; the original
    stays in `__context__`), or None when it is not one."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        if isinstance(e, ssl.SSLError):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


__all__ = ["HUB_CA_FILE", "CAFileError", "enrolled_ca", "hub_tls_context", "tls_failure"]
