"""Release manifests: what a signed release bundle holds (docs/updates.md).

The hub signs a manifest (protocols.signed framing, context `CONTEXT_RELEASE`) when a bundle
is added; whoever installs a release (the hub's push runs, a gateway's update agent in pull
mode) checks the signature against the pinned hub keys, then each file's SHA-256 against the
manifest. Firmware-style like the rest of protocols: pure, no I/O, no hashing here.

Manifest payload (a map, keys are text)::

    {"kind": "release", "version": "1.0.1", "created_ms": ..., "source": "git describe",
     "wheel": "estran-1.0.1-py3-none-any.whl",
     "files": {"estran-1.0.1-py3-none-any.whl": {"sha256": "64 hex", "size": 123456},
               "wheelhouse.tar": {...}, "playbooks/update.yml": {...}, ...}}
"""

from protocols.errors import MALFORMED, RemoteProtocolError
from protocols.signed import field

CONTEXT_RELEASE = b"estran/v1/release"
MANIFEST = "manifest.json"  # the unsigned copy inside a bundle, for people
WHEELHOUSE = "wheelhouse.tar"
MAX_FILES = 2000
MAX_VERSION = 64
_HEX = "0123456789abcdef"
_VERSION_CHARS = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.+-_"


def valid_version(text: "object") -> "bool":
    """A release version: 1 to 64 of [0-9A-Za-z.+-_], starting with a digit or letter (it
    names a directory on every gateway: no '/', no '..')."""
    if type(text) is not str or not 0 < len(text) <= MAX_VERSION or text[0] in ".+-_":
        return False
    return all(c in _VERSION_CHARS for c in text) and ".." not in text


def valid_path(path: "object") -> "bool":
    """A file of the bundle: relative, no '..', no empty or hidden-dot parts."""
    if type(path) is not str or not path or len(path) > 255 or path.startswith("/"):
        return False
    for part in path.split("/"):
        if part in ("", ".", "..") or "\\" in part or "\x00" in part:
            return False
    return True


def check_manifest(doc: "object") -> "dict[str, object]":
    """A release manifest, its shape checked (RemoteProtocolError naming what is wrong)."""
    if type(doc) is not dict:
        raise RemoteProtocolError(MALFORMED, "a release manifest is a map")
    if field(doc, "kind", str) != "release":
        raise RemoteProtocolError(MALFORMED, "not a release manifest")
    if not valid_version(field(doc, "version", str)):
        raise RemoteProtocolError(MALFORMED, "release version %r" % (doc["version"],))
    field(doc, "created_ms", int)
    wheel = field(doc, "wheel", str)
    files = field(doc, "files", dict)
    if not files or len(files) > MAX_FILES:  # type: ignore[arg-type]
        raise RemoteProtocolError(MALFORMED, "a release lists 1 to %d files" % MAX_FILES)
    for path, entry in files.items():  # type: ignore[attr-defined]
        if not valid_path(path):
            raise RemoteProtocolError(MALFORMED, "release file name %r" % (path,))
        if type(entry) is not dict:
            raise RemoteProtocolError(MALFORMED, "release file %s: not a map" % path)
        digest = entry.get("sha256")
        if type(digest) is not str or len(digest) != 64 or any(c not in _HEX for c in digest):
            raise RemoteProtocolError(MALFORMED, "release file %s: sha256" % path)
        size = entry.get("size")
        if type(size) is not int or size < 0:
            raise RemoteProtocolError(MALFORMED, "release file %s: size" % path)
    if wheel not in files:  # type: ignore[operator]
        raise RemoteProtocolError(MALFORMED, "the release's wheel %s is not in its files" % wheel)
    return doc


__all__ = [
    "CONTEXT_RELEASE",
    "MANIFEST",
    "WHEELHOUSE",
    "check_manifest",
    "valid_path",
    "valid_version",
]
