"""The gateway's identity: its key pair, enrollment, and the gateway state (TinyDB, atomic).

from edge.identity import enroll
enroll("https://hub.example", token, Path("/var/lib/estran"))
"""

from edge.identity._enroll import (
    HUB_CA_FILE,
    Enrolled,
    enroll,
    http_post,
    parse_token,
    verify_answer,
)
from edge.identity._errors import EnrollError, IdentityError
from edge.identity._key import GatewayKey
from edge.identity._state import (
    CREDENTIALS_FILE,
    KEY_FILE,
    STATE_FILE,
    ConfigState,
    GatewayState,
    Identity,
)
from edge.identity._storage import AtomicJSONStorage, atomic_write

__all__ = [
    "CREDENTIALS_FILE",
    "HUB_CA_FILE",
    "KEY_FILE",
    "STATE_FILE",
    "AtomicJSONStorage",
    "ConfigState",
    "EnrollError",
    "Enrolled",
    "GatewayKey",
    "GatewayState",
    "Identity",
    "IdentityError",
    "atomic_write",
    "enroll",
    "http_post",
    "parse_token",
    "verify_answer",
]
