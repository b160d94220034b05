"""The gateway's identity: its key pair, enrollment, and the gateway state (TinyDB, atomic).

from edge.identity import enroll
enroll("https://hub.example", token, Path("/var/lib/estran"))
"""

from edge.identity._config_file import ConfigFileError, enrolled_fields, write_config
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
from edge.identity._tls import CAFileError, enrolled_ca, hub_tls_context, tls_failure

__all__ = [
    "CREDENTIALS_FILE",
    "HUB_CA_FILE",
    "KEY_FILE",
    "STATE_FILE",
    "AtomicJSONStorage",
    "CAFileError",
    "ConfigFileError",
    "ConfigState",
    "EnrollError",
    "Enrolled",
    "GatewayKey",
    "GatewayState",
    "Identity",
    "IdentityError",
    "atomic_write",
    "enroll",
    "enrolled_ca",
    "enrolled_fields",
    "http_post",
    "hub_tls_context",
    "parse_token",
    "tls_failure",
    "verify_answer",
    "write_config",
]
