"""Fleet domain: registry, enrollment and identity, layered signed configuration, broker
access control.

    from fleet import Fleet
    with Fleet(data_dir) as f:
        token = f.create_token("marina", ttl_s=3600, actor="alice").token
"""

from fleet._accounts import (
    MAX_TOKEN_TTL_S,
    ROLES,
    SCOPES,
    Accounts,
    ApiToken,
    AuthRefused,
    Identity,
    IssuedApiToken,
    User,
    check_name,
)
from fleet._acl import (
    BrokerAccess,
    gateway_may,
    hub_may,
    mosquitto_acl,
    mosquitto_conf,
    mosquitto_passwords,
    reload_mosquitto,
    write_mosquitto_files,
)
from fleet._errors import ConfigRejected, Conflict, FleetError, NotFound, SchemaIssue, TokenRefused
from fleet._executor import (
    Executor,
    GatewayResult,
    Mode,
    Outcome,
    ReleaseRef,
    StepEvent,
    Target,
)
from fleet._fleet import (
    HUB_USER,
    AuditEntry,
    BrokerAccount,
    Enrollment,
    Fleet,
    Gateway,
    Group,
    IssuedToken,
    Outbound,
    SourceState,
    TokenInfo,
    b64,
    enroll_proof_payload,
    parse_token,
    unb64,
)
from fleet._keys import Keyring, raw_public, verify
from fleet._layers import changed_sections, diff, effective, merge, set_path, show_diff, unset_path
from fleet._passwd import hash_password, new_password, verify_password
from fleet._pull import JobReport, JobStatus, PullExecutor, PullJobs
from fleet._schema import check as check_config
from fleet._schema import validate as validate_config
from fleet._tls import TlsFiles, init_tls, tls_files

__all__ = [
    "HUB_USER",
    "MAX_TOKEN_TTL_S",
    "ROLES",
    "SCOPES",
    "Accounts",
    "ApiToken",
    "AuditEntry",
    "AuthRefused",
    "BrokerAccess",
    "BrokerAccount",
    "ConfigRejected",
    "Conflict",
    "Enrollment",
    "Executor",
    "Fleet",
    "FleetError",
    "Gateway",
    "GatewayResult",
    "Group",
    "Identity",
    "IssuedApiToken",
    "IssuedToken",
    "JobReport",
    "JobStatus",
    "Keyring",
    "Mode",
    "NotFound",
    "Outbound",
    "Outcome",
    "PullExecutor",
    "PullJobs",
    "ReleaseRef",
    "SchemaIssue",
    "SourceState",
    "StepEvent",
    "Target",
    "TlsFiles",
    "TokenInfo",
    "TokenRefused",
    "User",
    "b64",
    "changed_sections",
    "check_config",
    "check_name",
    "diff",
    "effective",
    "enroll_proof_payload",
    "gateway_may",
    "hash_password",
    "hub_may",
    "init_tls",
    "merge",
    "mosquitto_acl",
    "mosquitto_conf",
    "mosquitto_passwords",
    "new_password",
    "parse_token",
    "raw_public",
    "reload_mosquitto",
    "set_path",
    "show_diff",
    "tls_files",
    "unb64",
    "unset_path",
    "validate_config",
    "verify",
    "verify_password",
    "write_mosquitto_files",
]
