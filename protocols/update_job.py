"""Pull-mode update jobs: what the hub sends on a gateway's `cmd` topic, and the step
reports the gateway answers on `report` (docs/updates.md, "Pull mode").

Sans-IO and firmware-style like `protocols.signed`, whose framing it uses: a job is a signed
document (`[1, payload, [[key_id, signature], ...]]`, the body of a wire `cmd` envelope),
signed with the context `CONTEXT_UPDATE`, so that a signature made for a command or a
configuration never verifies as an update job, nor the other way round. This module builds
and checks the shape of the payload; the signatures are computed and verified where a crypto
library is (the hub's keyring, `edge.update`).

Job payload (a map, keys are text)::

    {"kind": "update", "gateway": "gw-017", "job": "r3-gw-017", "seq": 7,
     "nonce": <16 random bytes>, "issued_ms": ..., "expires_ms": ...,
     "release": "1.0.1",
     "bundle": {"manifest_url": "https://hub.example/api/v1/releases/1.0.1/manifest",
                "files_url": "https://hub.example/api/v1/releases/1.0.1/files/",
                "manifest_sha256": "<64 hex digits>"}}

- `seq` only grows for a gateway: a job whose seq is not above the last one the gateway
  accepted is a replay (refused), whatever else it says. `nonce` makes two jobs with the same
  content differ; the gateway keeps the last job ids it saw.
- `expires_ms`: a job received after it is refused (an offline gateway does not run a job
  that an admin has long since cancelled).
- the release bundle is served file by file (docs/updates.md): `manifest_url` is its signed
  manifest (a `protocols.signed` document, context `CONTEXT_RELEASE`, listing every file
  with its SHA-256 and size), `files_url` + a file's path is that file. The job pins the
  manifest's SHA-256; the gateway checks it, the manifest's signature by a pinned hub key,
  and every file it fetches against the manifest, so a bundle swapped on the way or on the
  hub's disk is refused.

Report payload (the body of a wire `report` envelope; not signed: the broker's identity and
topic ACL say who sent it)::

    {"kind": "update", "job": "r3-gw-017" | None, "seq": 7 | None, "n": 3,
     "step": "fetched", "outcome": "running", "code": "", "reason": "...",
     "release": "1.0.1" | None, "ts_ms": ...}

`n` numbers the reports of one job from 1 (a report sent twice after a restart of the
daemon has the same `n`: the hub keeps one). `outcome` is `running` until the last report of
the job: `done`, `rolled_back`, `failed` or `refused`; a refusal says why in `code` (one of
`REFUSALS`) and in words in `reason`.
"""

from protocols.errors import MALFORMED, LocalProtocolError, RemoteProtocolError
from protocols.signed import decode_payload, decode_signed, encode_payload, field

CONTEXT_UPDATE = b"estran/v1/update"
CONTEXT_RELEASE = b"estran/v1/release"  # a release bundle's manifest, signed by the hub
KIND = "update"

NONCE_BYTES = 16
SHA256_CHARS = 64
MAX_JOB_ID = 64
MAX_URL = 1024
MAX_RELEASE = 64
MAX_REASON = 300
MAX_BUNDLE_FILE = 1 << 30  # 1 GiB: a wheel, a wheelhouse, each playbook file
MAX_BUNDLE_FILES = 1024

# Steps, in order (a job stops at the first that fails).
RECEIVED = "received"  # the job verified and accepted; its seq is recorded
FETCHED = "fetched"  # the bundle downloaded, its SHA-256 the job's
VERIFIED = "verified"  # the bundle's manifest signed by a pinned hub key, every file's checksum
PLAYBOOK = "playbook"  # one per task of update.yml as it starts (reason: the task's name)
FINISHED = "finished"  # the last report of a job
STEPS = (RECEIVED, FETCHED, VERIFIED, PLAYBOOK, FINISHED)

# Outcomes.
RUNNING = "running"
DONE = "done"  # the new release runs and passed the health gate
ROLLED_BACK = "rolled_back"  # the new release failed the gate: the previous one runs again
FAILED = "failed"  # could not run (download, playbook error...): the running release is kept
REFUSED = "refused"  # never started: see the code
OUTCOMES = (RUNNING, DONE, ROLLED_BACK, FAILED, REFUSED)
FINAL = (DONE, ROLLED_BACK, FAILED, REFUSED)

# Why a job is refused (report `code`; the gateway counts them by code).
MALFORMED_JOB = "malformed"  # not a job message, or a field missing or of the wrong type
SIGNATURE = "signature"  # unsigned, badly signed, or by no hub key the gateway pinned
FOREIGN = "foreign"  # meant for another gateway
REPLAY = "replay"  # seq not above the last accepted, or a job id already seen
EXPIRED = "expired"  # received after expires_ms
BUSY = "busy"  # another job is running on this gateway
BUNDLE_CHECKSUM = "bundle_checksum"  # a file fetched is not the one the manifest (or job) names
BUNDLE_INVALID = "bundle_invalid"  # the manifest unsigned, badly signed or malformed
UNSUPPORTED = "unsupported"  # the gateway cannot run pull updates (no ansible-playbook)
TRUST = "trust"  # the root-owned copy of the hub keys is missing, or others can write it
REFUSALS = (
    MALFORMED_JOB,
    SIGNATURE,
    FOREIGN,
    REPLAY,
    EXPIRED,
    BUSY,
    BUNDLE_CHECKSUM,
    BUNDLE_INVALID,
    UNSUPPORTED,
    TRUST,
)

_HEX = "0123456789abcdef"
_JOB_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_."


def _text(value: "object", name: "str", limit: "int") -> "str":
    if type(value) is not str or not 0 < len(value) <= limit:
        raise RemoteProtocolError(
            MALFORMED, "%r is not a text of 1 to %d characters" % (name, limit)
        )
    return value


def _sha256(value: "object", name: "str") -> "str":
    if type(value) is not str or len(value) != SHA256_CHARS or any(c not in _HEX for c in value):
        raise RemoteProtocolError(MALFORMED, "%r is not a SHA-256 in lowercase hex" % name)
    return value


def _uint(value: "object", name: "str") -> "int":
    if type(value) is not int or value < 0:
        raise RemoteProtocolError(MALFORMED, "%r is not a non-negative integer" % name)
    return value


def _url(value: "object", name: "str") -> "str":
    url = _text(value, name, MAX_URL)
    if not (url.startswith("https://") or url.startswith("http://")):
        raise RemoteProtocolError(MALFORMED, "%r is not an http(s) URL" % name)
    return url


def _valid_job_id(text: "str") -> "bool":
    """1 to 64 characters among ASCII letters, digits, '-', '_' and '.' (never '/')."""
    return (
        0 < len(text) <= MAX_JOB_ID
        and all(c in _JOB_CHARS for c in text)
        and text not in (".", "..")
    )


class UpdateJob:
    """A job's payload, its shape checked (`check_job`); not its signature."""

    __slots__ = (
        "expires_ms",
        "files_url",
        "gateway",
        "issued_ms",
        "job",
        "manifest_sha256",
        "manifest_url",
        "nonce",
        "release",
        "seq",
    )

    def __init__(
        self,
        gateway: "str",
        job: "str",
        seq: "int",
        nonce: "bytes",
        issued_ms: "int",
        expires_ms: "int",
        release: "str",
        manifest_url: "str",
        files_url: "str",
        manifest_sha256: "str",
    ) -> "None":
        self.gateway = gateway
        self.job = job
        self.seq = seq
        self.nonce = nonce
        self.issued_ms = issued_ms
        self.expires_ms = expires_ms
        self.release = release
        self.manifest_url = manifest_url
        self.files_url = files_url
        self.manifest_sha256 = manifest_sha256

    def document(self) -> "dict[str, object]":
        """The payload map (sign `encode_payload(job.document())` with CONTEXT_UPDATE)."""
        return {
            "kind": KIND,
            "gateway": self.gateway,
            "job": self.job,
            "seq": self.seq,
            "nonce": bytes(self.nonce),
            "issued_ms": self.issued_ms,
            "expires_ms": self.expires_ms,
            "release": self.release,
            "bundle": {
                "manifest_url": self.manifest_url,
                "files_url": self.files_url,
                "manifest_sha256": self.manifest_sha256,
            },
        }

    def payload(self) -> "bytes":
        """The deterministic CBOR bytes to sign."""
        check_job(self.document())  # a job the gateway would refuse is never built
        return encode_payload(self.document())

    def __repr__(self) -> "str":
        return "UpdateJob(%s seq %d for %s: %s)" % (self.job, self.seq, self.gateway, self.release)


def check_job(doc: "object") -> "UpdateJob":
    """An update job from its decoded payload map, every field checked; RemoteProtocolError
    (MALFORMED) otherwise. The caller checks gateway, seq and expiry against its own state."""
    if type(doc) is not dict:
        raise RemoteProtocolError(MALFORMED, "a job is a map")
    if doc.get("kind") != KIND:
        raise RemoteProtocolError(MALFORMED, "not an update job (kind %r)" % (doc.get("kind"),))
    gateway = _text(field(doc, "gateway", str), "gateway", 64)
    job = _text(field(doc, "job", str), "job", MAX_JOB_ID)
    if not _valid_job_id(job):
        raise RemoteProtocolError(MALFORMED, "job id %r: letters, digits, '-', '_', '.'" % job)
    seq = _uint(field(doc, "seq", int), "seq")
    nonce = field(doc, "nonce", bytes)
    if len(nonce) != NONCE_BYTES:  # type: ignore[arg-type]
        raise RemoteProtocolError(MALFORMED, "nonce is %d bytes" % NONCE_BYTES)
    issued = _uint(field(doc, "issued_ms", int), "issued_ms")
    expires = _uint(field(doc, "expires_ms", int), "expires_ms")
    if expires <= issued:
        raise RemoteProtocolError(MALFORMED, "a job expires after it is issued")
    release = _text(field(doc, "release", str), "release", MAX_RELEASE)
    bundle = field(doc, "bundle", dict)
    manifest_url = _url(field(bundle, "manifest_url", str), "bundle.manifest_url")  # type: ignore[arg-type]
    files_url = _url(field(bundle, "files_url", str), "bundle.files_url")  # type: ignore[arg-type]
    if not files_url.endswith("/"):
        raise RemoteProtocolError(MALFORMED, "bundle.files_url does not end with '/'")
    sha = _sha256(field(bundle, "manifest_sha256", str), "bundle.manifest_sha256")  # type: ignore[arg-type]
    return UpdateJob(
        gateway,
        job,
        seq,
        nonce,  # type: ignore[arg-type]
        issued,
        expires,
        release,
        manifest_url,
        files_url,
        sha,
    )


def is_update_job(body: "bytes") -> "bool":
    """Whether a `cmd` envelope body is an update job (its payload's kind), without checking
    anything else: the gateway routes it to its update agent, which verifies it."""
    try:
        doc = decode_payload(decode_signed(body).payload)
    except RemoteProtocolError:
        return False
    return doc.get("kind") == KIND


# -- release manifests (the signed list of a bundle's files) --------------------------------


def _valid_path(path: "str") -> "bool":
    """A relative path inside the bundle: no '..', no absolute path, no empty part."""
    if not 0 < len(path) <= 255 or path.startswith("/") or "\\" in path:
        return False
    return all(part not in ("", ".", "..") for part in path.split("/"))


def check_manifest(doc: "object") -> "tuple[str, str, dict[str, tuple[str, int]]]":
    """(version, wheel file name, {path: (sha256, size)}) of a release manifest payload
    (`{"kind": "release", "version", "wheel", "files": {path: {"sha256", "size"}}, ...}`),
    every path relative and inside the bundle; RemoteProtocolError otherwise."""
    if type(doc) is not dict or doc.get("kind") != "release":
        raise RemoteProtocolError(MALFORMED, "not a release manifest")
    version = _text(field(doc, "version", str), "version", MAX_RELEASE)
    wheel = _text(field(doc, "wheel", str), "wheel", 255)
    files = field(doc, "files", dict)
    if not 0 < len(files) <= MAX_BUNDLE_FILES:  # type: ignore[arg-type]
        raise RemoteProtocolError(MALFORMED, "a manifest lists 1 to %d files" % MAX_BUNDLE_FILES)
    out = {}  # type: dict[str, tuple[str, int]]
    for path, entry in files.items():  # type: ignore[attr-defined]
        if type(path) is not str or not _valid_path(path):
            raise RemoteProtocolError(MALFORMED, "manifest path %r" % (path,))
        if type(entry) is not dict:
            raise RemoteProtocolError(MALFORMED, "manifest entry of %r" % path)
        sha = _sha256(entry.get("sha256"), path)
        size = _uint(entry.get("size"), path)
        if size > MAX_BUNDLE_FILE:
            raise RemoteProtocolError(
                MALFORMED, "%r is larger than %d bytes" % (path, MAX_BUNDLE_FILE)
            )
        out[path] = (sha, size)
    if wheel not in out or "/" in wheel:
        raise RemoteProtocolError(
            MALFORMED, "the manifest's wheel %r is not one of its files" % wheel
        )
    return version, wheel, out


# -- reports --------------------------------------------------------------------------------


def report(
    job: "str | None",
    seq: "int | None",
    n: "int",
    step: "str",
    outcome: "str",
    reason: "str",
    release: "str | None",
    ts_ms: "int",
    code: "str" = "",
) -> "dict[str, object]":
    """A step report (see the module doc). Encode it with `wire.Envelope.of(wire.REPORT, doc)`."""
    if step not in STEPS:
        raise LocalProtocolError("unknown step %r" % step)
    if outcome not in OUTCOMES:
        raise LocalProtocolError("unknown outcome %r" % outcome)
    if code and code not in REFUSALS:
        raise LocalProtocolError("unknown refusal code %r" % code)
    return {
        "kind": KIND,
        "job": job,
        "seq": seq,
        "n": n,
        "step": step,
        "outcome": outcome,
        "code": code,
        "reason": reason[:MAX_REASON],
        "release": release,
        "ts_ms": ts_ms,
    }


def check_report(doc: "object") -> "dict[str, object]":
    """A step report received by the hub, its shape checked (RemoteProtocolError otherwise)."""
    if type(doc) is not dict or doc.get("kind") != KIND:
        raise RemoteProtocolError(MALFORMED, "not an update report")
    job = doc.get("job")
    if job is not None and (type(job) is not str or not _valid_job_id(job)):
        raise RemoteProtocolError(MALFORMED, "report job id")
    seq = doc.get("seq")
    if seq is not None:
        _uint(seq, "seq")
    n = _uint(field(doc, "n", int), "n")
    if n < 1:
        raise RemoteProtocolError(MALFORMED, "report n starts at 1")
    step = field(doc, "step", str)
    outcome = field(doc, "outcome", str)
    code = field(doc, "code", str)
    reason = field(doc, "reason", str)
    _uint(field(doc, "ts_ms", int), "ts_ms")
    if step not in STEPS:
        raise RemoteProtocolError(MALFORMED, "report step %r" % (step,))
    if outcome not in OUTCOMES:
        raise RemoteProtocolError(MALFORMED, "report outcome %r" % (outcome,))
    if code and code not in REFUSALS:
        raise RemoteProtocolError(MALFORMED, "report code %r" % (code,))
    if len(reason) > MAX_REASON:  # type: ignore[arg-type]
        raise RemoteProtocolError(MALFORMED, "report reason too long")
    release = doc.get("release")
    if release is not None:
        _text(release, "release", MAX_RELEASE)
    return doc


__all__ = [
    "BUNDLE_CHECKSUM",
    "BUNDLE_INVALID",
    "BUSY",
    "CONTEXT_RELEASE",
    "CONTEXT_UPDATE",
    "DONE",
    "EXPIRED",
    "FAILED",
    "FETCHED",
    "FINAL",
    "FINISHED",
    "FOREIGN",
    "KIND",
    "MALFORMED_JOB",
    "NONCE_BYTES",
    "OUTCOMES",
    "PLAYBOOK",
    "RECEIVED",
    "REFUSALS",
    "REFUSED",
    "REPLAY",
    "ROLLED_BACK",
    "RUNNING",
    "SIGNATURE",
    "STEPS",
    "UNSUPPORTED",
    "VERIFIED",
    "UpdateJob",
    "check_job",
    "check_manifest",
    "check_report",
    "is_update_job",
    "report",
]
