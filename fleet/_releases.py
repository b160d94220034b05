"""Release bundles: built from the repository, added to the hub (checked, then signed with
the hub's keys like a configuration), served to gateways file by file (docs/updates.md).

A bundle is a tar file `estran-release-VERSION.tar`:

    manifest.json                     the manifest, unsigned (for people; the hub signs it)
    estran-VERSION-py3-none-any.whl   the release
    wheelhouse.tar                    optional: the dependency wheels (pip --no-index)
    playbooks/...                     the playbooks of that release (update.yml, roles, library)

The manifest (protocols.update_job.check_manifest) lists every other file with its SHA-256
and size. On the hub a release lives in `<data>/fleet/releases/VERSION/`: the files, and
`manifest.signed` (protocols.signed framing, context CONTEXT_RELEASE). Whoever installs it
checks the signature against a pinned hub key, then each file against the manifest: the
transport (plain HTTP, a mirror, a USB stick) need not be trusted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from fleet._commands import Commands
from fleet._errors import Conflict, FleetError, NotFound
from fleet._executor import ReleaseRef
from protocols import signed
from protocols.errors import ProtocolError
from protocols.update_job import CONTEXT_RELEASE, check_manifest

MANIFEST = "manifest.json"
SIGNED = "manifest.signed"
WHEELHOUSE = "wheelhouse.tar"
MAX_BUNDLE = 2 << 30  # bytes of a bundle the hub takes
_WHEEL = re.compile(r"^estran-([0-9A-Za-z.+_-]{1,64})-py3-none-any\.whl$")
_VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,63}$")
_PLAYBOOK_SKIP = ("__pycache__", ".ansible", ".pyc")

_SQL = """
CREATE TABLE IF NOT EXISTS releases (
    version TEXT PRIMARY KEY, manifest_sha256 TEXT NOT NULL, wheel TEXT NOT NULL,
    size INTEGER NOT NULL, files INTEGER NOT NULL, source TEXT NOT NULL,
    created_ms INTEGER NOT NULL, added_ms INTEGER NOT NULL, added_by TEXT NOT NULL)
"""


class BundleRejected(FleetError):
    """A release bundle `release add` (or the upload endpoint) refuses. `reason` is one of
    REJECT_REASONS; the message says what was found."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REJECT_REASONS, reason
        super().__init__(message)
        self.reason = reason


REJECT_REASONS = (
    "too_large",  # over MAX_BUNDLE (or the upload's limit)
    "not_a_bundle",  # not a readable tar file, or no manifest.json in it
    "bad_manifest",  # the manifest malformed: fields, a path outside the bundle, the version
    "unsafe_name",  # a member named outside the bundle (absolute, "..", a backslash, control)
    "extra_files",  # a file the manifest does not list
    "missing_files",  # a file the manifest lists is not in the bundle
    "not_regular",  # a link, a device, a directory where a file is listed
    "checksum",  # a file's SHA-256 or size is not the manifest's
)


def _unsafe(name: str) -> bool:
    parts = name.split("/")
    return (
        not name
        or name.startswith("/")
        or "\\" in name
        or any(p in ("", ".", "..") for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in name)
    )


def valid_version(text: str) -> bool:
    """A release version names a directory on every gateway: no '/', no '..'."""
    return bool(_VERSION.match(text)) and ".." not in text


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class Release:
    version: str
    manifest_sha256: str  # of the signed manifest: what a pull job pins
    wheel: str
    size: int
    files: int
    source: str
    created_ms: int
    added_ms: int
    added_by: str

    def as_dict(self) -> dict[str, object]:
        return {
            "version": self.version,
            "manifest_sha256": self.manifest_sha256,
            "wheel": self.wheel,
            "size": self.size,
            "files": self.files,
            "source": self.source,
            "created_ms": self.created_ms,
            "added_ms": self.added_ms,
            "added_by": self.added_by,
        }


# -- building a bundle (on an admin's or a CI machine) ------------------------------------------


def _git(repo: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60
        )
    except OSError:
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def build_wheel(repo: Path, out: Path) -> Path:
    """`pip wheel` of the repository's tracked files (a copy: the tree is left clean)."""
    tracked = _git(repo, "ls-files", "-z")
    with tempfile.TemporaryDirectory(prefix="estran-release-") as tmp:
        src = Path(tmp) / "src"
        names = [n for n in tracked.split("\0") if n] if tracked else None
        if names is None:
            shutil.copytree(repo, src, ignore=shutil.ignore_patterns(".git", ".venv", "build"))
        else:
            for rel in names:
                if rel.startswith(("hil-tests/", "docs/", ".ci/")) or "/tests/" in rel:
                    continue
                if not (repo / rel).is_file():
                    continue
                (src / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(repo / rel, src / rel)
        dist = Path(tmp) / "dist"
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
             "--no-build-isolation", "--wheel-dir", str(dist), str(src)],
            capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        if proc.returncode != 0:
            raise FleetError(f"pip wheel failed: {proc.stderr.strip()[-500:]}")
        wheels = list(dist.glob("estran-*.whl"))
        if len(wheels) != 1:
            raise FleetError(f"pip wheel made {len(wheels)} estran wheels, not one")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.copy2(wheels[0], out / wheels[0].name))


def _playbook_files(playbooks: Path) -> list[Path]:
    found = []
    for path in sorted(playbooks.rglob("*")):
        rel = path.relative_to(playbooks)
        skip = any(p in _PLAYBOOK_SKIP for p in rel.parts) or path.suffix == ".pyc"
        if path.is_file() and not skip:
            found.append(path)
    return found


def build_bundle(
    out: Path,
    *,
    repo: Path,
    wheel: Path | None = None,
    wheelhouse: Path | None = None,
    clock: float | None = None,
) -> Path:
    """Write `estran-release-VERSION.tar` into `out` and return its path: the repository's
    wheel (built, or `wheel` as given), its playbooks/, and `wheelhouse` (a .tar of
    dependency wheels) when given."""
    if wheel is None:
        wheel = build_wheel(repo, out)
    match = _WHEEL.match(wheel.name)
    if match is None or not valid_version(match.group(1)):
        raise FleetError(f"{wheel.name}: not an estran wheel (estran-VERSION-py3-none-any.whl)")
    version = match.group(1)
    playbooks = repo / "playbooks"
    if not (playbooks / "update.yml").is_file():
        raise FleetError(f"{playbooks}: no update.yml (is {repo} the repository?)")
    entries: list[tuple[str, Path]] = [(wheel.name, wheel)]
    if wheelhouse is not None:
        if not tarfile.is_tarfile(wheelhouse):
            raise FleetError(f"{wheelhouse}: the wheelhouse is a .tar of wheels")
        entries.append((WHEELHOUSE, wheelhouse))
    entries += [(f"playbooks/{p.relative_to(playbooks)}", p) for p in _playbook_files(playbooks)]
    manifest = {
        "kind": "release",
        "version": version,
        "created_ms": int((clock if clock is not None else time.time()) * 1000),
        "source": _git(repo, "describe", "--always", "--dirty"),
        "wheel": wheel.name,
        "files": {
            name: {"sha256": sha256_file(path), "size": path.stat().st_size}
            for name, path in entries
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    bundle = out / f"estran-release-{version}.tar"
    partial = bundle.with_suffix(".tar.partial")
    with tarfile.open(partial, "w") as tar:
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
        tar.addfile(info, io.BytesIO(data))
        for name, path in entries:
            tar.add(path, arcname=name, recursive=False)
    os.replace(partial, bundle)
    return bundle


# -- the hub's release store ---------------------------------------------------------------------


def _extract(bundle: Path, into: Path) -> dict[str, object]:
    """The bundle's files into `into`, checked against its manifest; the manifest.
    BundleRejected (with its reason) otherwise."""
    try:
        with tarfile.open(bundle, "r:*") as tar:
            members = tar.getmembers()
            names = [m.name for m in members]
            odd = [n for n in names if _unsafe(n)]
            if odd:
                raise BundleRejected(
                    "unsafe_name", f"{bundle.name}: names outside the bundle: {odd[:5]}"
                )
            if MANIFEST not in names:
                raise BundleRejected(
                    "not_a_bundle", f"{bundle.name}: no {MANIFEST}: not a release bundle"
                )
            f = tar.extractfile(MANIFEST)
            if f is None:
                raise BundleRejected("not_regular", f"{MANIFEST} is not a file")
            try:
                manifest = json.loads(f.read(1 << 20))
                version, wheel, files = check_manifest(manifest)
            except (ValueError, ProtocolError) as e:
                raise BundleRejected("bad_manifest", f"{bundle.name}: bad manifest: {e}") from None
            if not valid_version(version) or not _WHEEL.match(wheel):
                raise BundleRejected(
                    "bad_manifest", f"{bundle.name}: version {version!r} or wheel {wheel!r}"
                )
            if len(set(names)) != len(names):
                raise BundleRejected("extra_files", f"{bundle.name}: a name appears twice")
            extra = set(names) - set(files) - {MANIFEST}
            if extra:
                raise BundleRejected(
                    "extra_files", f"{bundle.name}: files not in the manifest: {sorted(extra)[:5]}"
                )
            missing = set(files) - set(names)
            if missing:
                raise BundleRejected(
                    "missing_files", f"{bundle.name}: files missing: {sorted(missing)[:5]}"
                )
            for m in members:
                if m.name != MANIFEST and not m.isfile():
                    raise BundleRejected(
                        "not_regular", f"{bundle.name}: {m.name} is not a regular file"
                    )
            tar.extractall(into, members=[m for m in members if m.name != MANIFEST], filter="data")
    except (tarfile.TarError, OSError) as e:
        raise BundleRejected(
            "not_a_bundle", f"{bundle.name}: not a readable tar file: {e}"
        ) from None
    for name, (digest, size) in files.items():
        path = into / name
        if path.stat().st_size != size or sha256_file(path) != digest:
            raise BundleRejected(
                "checksum", f"{bundle.name}: {name}: checksum does not match the manifest"
            )
    return dict(manifest)


class Releases(Commands):
    """The release store: `<data>/fleet/releases/VERSION/` and the `releases` table."""

    def _release_dir(self) -> Path:
        path = self.directory / "releases"
        path.mkdir(mode=0o755, exist_ok=True)
        return path

    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(data_dir, clock=clock)
        with self._lock:
            self._db.execute(_SQL)

    def add_release(self, bundle: Path, actor: str) -> Release:
        """Check a bundle (every file against its manifest), sign its manifest, keep it.
        The same bundle again is a no-op; another bundle of a version held is a Conflict."""
        if bundle.stat().st_size > MAX_BUNDLE:
            raise BundleRejected("too_large", f"{bundle.name}: larger than {MAX_BUNDLE >> 20} MiB")
        store = self._release_dir()
        tmp = Path(tempfile.mkdtemp(prefix=".add-", dir=store))
        try:
            manifest = _extract(bundle, tmp)
            version = str(manifest["version"])
            with self._lock:
                row = self._db.execute(
                    "SELECT manifest_sha256 FROM releases WHERE version = ?", (version,)
                ).fetchone()
            if row is not None:
                held = signed.decode_signed((store / version / SIGNED).read_bytes()).document()
                if {k: v for k, v in held.items() if k != "created_ms"} == {
                    k: v for k, v in manifest.items() if k != "created_ms"
                }:
                    return self.release(version)
                raise Conflict(f"release {version} exists with other files: remove it first")
            body = self.keys.sign_document(CONTEXT_RELEASE, manifest)
            (tmp / SIGNED).write_bytes(body)
            for path in tmp.rglob("*"):
                path.chmod(0o755 if path.is_dir() else 0o644)
            tmp.chmod(0o755)
            target = store / version
            if target.exists():  # left by a crash between rename and insert
                shutil.rmtree(target)
            os.rename(tmp, target)
            files = manifest["files"]
            assert isinstance(files, dict)
            size = sum(int(e["size"]) for e in files.values())
            with self._tx() as db:
                db.execute(
                    "INSERT INTO releases (version, manifest_sha256, wheel, size, files, source,"
                    " created_ms, added_ms, added_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        version,
                        hashlib.sha256(body).hexdigest(),
                        str(manifest["wheel"]),
                        size,
                        len(files),
                        str(manifest.get("source") or ""),
                        int(str(manifest["created_ms"])),
                        self._now_ms(),
                        actor,
                    ),
                )
                self._audit(db, actor, "release.add", version, files=len(files), size=size)
                self._bump(db)
            return self.release(version)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)

    def releases(self) -> list[Release]:
        with self._lock:
            rows = self._db.execute(
                "SELECT version, manifest_sha256, wheel, size, files, source, created_ms,"
                " added_ms, added_by FROM releases ORDER BY added_ms"
            ).fetchall()
        return [Release(*r) for r in rows]

    def release(self, version: str) -> Release:
        for r in self.releases():
            if r.version == version:
                return r
        raise NotFound(f"no release {version!r} (estran fleet release add BUNDLE)")

    def remove_release(self, version: str, actor: str) -> None:
        self.release(version)
        with self._tx() as db:
            db.execute("DELETE FROM releases WHERE version = ?", (version,))
            self._audit(db, actor, "release.remove", version)
            self._bump(db)
        shutil.rmtree(self._release_dir() / version, ignore_errors=True)

    def release_manifest(self, version: str) -> bytes:
        """The signed manifest (what gateways verify)."""
        self.release(version)
        return (self._release_dir() / version / SIGNED).read_bytes()

    def release_file(self, version: str, name: str) -> Path:
        """A file of a release, by its name in the manifest (nothing else is served)."""
        ref = self.release_ref(version, "")
        if not ref.has(name) or ref.directory is None:
            raise NotFound(f"release {version} has no file {name!r}")
        return ref.directory / name

    def release_ref(self, version: str, hub_url: str) -> ReleaseRef:
        """What an executor needs of a release; `hub_url` is where gateways reach the hub."""
        body = self.release_manifest(version)
        manifest = signed.decode_signed(body).document()
        base = f"{hub_url.rstrip('/')}/api/v1/releases/{version}"
        return ReleaseRef(
            version=version,
            manifest_url=f"{base}/manifest",
            files_url=f"{base}/files/",
            directory=self._release_dir() / version,
            manifest=manifest,
        )

    def verify_release(self, version: str) -> list[str]:
        """Files of a held release whose checksum no longer matches (disk damage, tampering)."""
        ref = self.release_ref(version, "")
        files = ref.manifest["files"]
        assert isinstance(files, dict) and ref.directory is not None
        return [n for n in files if sha256_file(ref.directory / n) != ref.sha256(n)]


def bundle_names(bundle: Path) -> Iterable[str]:
    with tarfile.open(bundle) as tar:
        return tar.getnames()


__all__ = [
    "MANIFEST",
    "REJECT_REASONS",
    "SIGNED",
    "WHEELHOUSE",
    "BundleRejected",
    "Release",
    "Releases",
    "build_bundle",
    "build_wheel",
    "bundle_names",
    "sha256_file",
    "valid_version",
]
