"""The hub keys the job runner trusts: a copy of its own, root's, never the gateway state.

The daemon's user can write `/var/lib/estran/state.json` (its pinned hub keys included). The
job runner runs as root under systemd (`estran-update@JOB`): were it to trust those keys, a
compromised daemon could plant a key of its own, sign a job and a bundle with it, and have
root run the playbook of its choosing. So the runner reads the hub keys from
`/opt/estran/trusted-keys.json`, beside `pull.json` and the releases (root's, 0644, in a
directory only root writes), written by `provision.yml` as root (`python -m edge.update
trust`): from the hub's keys the admin gives (`estran_hub_keys`), else, once, from the state
the enrollment just wrote. The runner refuses (code `trust`) when the file is missing, is not
a regular file, or it or its directory belongs to another user than root (or the runner's
own user, in process mode) or can be written by group or others.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import stat
import sys
from pathlib import Path

from edge.identity import GatewayState
from edge.identity._storage import atomic_write
from edge.update._errors import JobRefused
from protocols import signed, update_job

TRUSTED_KEYS_FILE = "trusted-keys.json"
MAX_FILE = 64 * 1024


def _owner_ok(st: os.stat_result) -> bool:
    return st.st_uid in (0, os.geteuid())


def _check(st: os.stat_result, what: str) -> None:
    if not _owner_ok(st):
        raise JobRefused(
            update_job.TRUST,
            f"{what} belongs to uid {st.st_uid}, not root: the runner trusts no key in it",
        )
    if st.st_mode & 0o022:
        raise JobRefused(
            update_job.TRUST,
            f"{what} can be written by group or others (mode {stat.S_IMODE(st.st_mode):04o})",
        )


def parse_keys(doc: object) -> dict[str, bytes]:
    """`{"keys": {key_id: base64 public key}}` → {key_id: key}; ValueError when malformed."""
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), dict) or not doc["keys"]:
        raise ValueError('not {"keys": {key id: base64 public key, ...}} with one key or more')
    keys: dict[str, bytes] = {}
    for kid, b64 in doc["keys"].items():
        try:
            pub = base64.b64decode(str(b64), validate=True)
        except ValueError as e:
            raise ValueError(f"key {kid}: not base64") from e
        if len(pub) != signed.KEY_BYTES or signed.key_id(pub) != kid:
            raise ValueError(f"key {kid}: not a raw Ed25519 key of that id")
        keys[str(kid)] = pub
    return keys


def load_trusted_keys(path: Path) -> dict[str, bytes]:
    """The hub keys in `path`, checked as above; JobRefused(`trust`) otherwise."""
    with contextlib.suppress(FileNotFoundError):
        _check(os.stat(path.parent), str(path.parent))
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError as e:
        raise JobRefused(
            update_job.TRUST,
            f"{path} is missing: provision.yml writes the hub keys root trusts there",
        ) from e
    except OSError as e:  # a symbolic link (ELOOP), no permission...
        raise JobRefused(update_job.TRUST, f"{path}: {e.strerror}") from e
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise JobRefused(update_job.TRUST, f"{path} is not a regular file")
        _check(st, str(path))
        data = f.read(MAX_FILE + 1)
    try:
        if len(data) > MAX_FILE:
            raise ValueError("too large")
        return parse_keys(json.loads(data))
    except ValueError as e:
        raise JobRefused(update_job.TRUST, f"{path}: {e}") from e


def trusted_keys_path() -> Path:
    """`/opt/estran/trusted-keys.json`: found from the release this runner runs from
    (`/opt/estran/releases/N`), like pull.json; never from anything the daemon wrote."""
    return Path(sys.prefix).resolve().parents[1] / TRUSTED_KEYS_FILE


def write_trusted_keys(out: Path, data_dir: Path, given: dict[str, bytes] | None) -> str:
    """What `python -m edge.update trust` does (provision.yml, as root): write `given` (the
    hub's keys the admin named) to `out`; without them, copy the keys of the gateway state
    once, when `out` does not exist yet (right after enrollment), never later: a key the
    daemon's user planted in the state since is not promoted. Returns what was done."""
    if given is None:
        if out.exists():
            return "unchanged: kept (estran_hub_keys replaces it)"
        if not (data_dir / "state.json").exists():
            return "unchanged: not enrolled yet"
        with contextlib.closing(GatewayState(data_dir)) as state:
            given = state.trusted_keys()
        if not given:
            return "unchanged: the gateway state pins no hub key yet"
    doc = {"keys": {k: base64.b64encode(v).decode() for k, v in sorted(given.items())}}
    text = (json.dumps(doc, indent=2) + "\n").encode()
    with contextlib.suppress(OSError):
        st = os.lstat(out)
        same = stat.S_ISREG(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o644
        if same and out.read_bytes() == text:
            return "unchanged"
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(out, text, 0o644)
    return f"changed: {len(given)} hub key(s) trusted"


__all__ = [
    "TRUSTED_KEYS_FILE",
    "load_trusted_keys",
    "parse_keys",
    "trusted_keys_path",
    "write_trusted_keys",
]
