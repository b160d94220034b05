"""Wheels of this repository for tests: the release a gateway installs, at any version.

`build_wheel` copies the source tree (tracked files only), optionally sets another version
and applies text patches (a deliberately broken release), and builds one wheel with pip.
`wheelhouse` downloads the dependency wheels of an extra once (pip's cache makes it cheap),
so that installs into fresh virtual environments run with `--no-index` and never wait on
the network: the same layout as the offline wheelhouse of a release bundle (docs/updates.md).
"""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["REPO", "build_wheel", "built_wheels", "wheelhouse"]

REPO = Path(__file__).resolve().parents[2]
PIP_S = 600.0


def _tracked_files() -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout
    return [p for p in out.decode().split("\0") if p]


def build_wheel(
    out: Path,
    version: str | None = None,
    patches: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """Build the estran wheel into `out` (version and `{path: (old, new)}` patches applied to
    a copy of the tree). Returns the wheel's path."""
    src = out / "src"
    if src.exists():
        shutil.rmtree(src)
    for rel in _tracked_files():
        if rel.startswith(("hil-tests/", "docs/", ".ci/")) or "/tests/" in rel:
            continue
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, target)
    if version is not None:
        py = src / "pyproject.toml"
        py.write_text(re.sub(r'(?m)^version = ".*"$', f'version = "{version}"', py.read_text()))
        init = src / "estran" / "__init__.py"
        init.write_text(
            re.sub(r'__version__ = ".*"', f'__version__ = "{version}"', init.read_text())
        )
    for rel, (old, new) in (patches or {}).items():
        path = src / rel
        text = path.read_text()
        if old not in text:
            raise AssertionError(f"patch does not apply to {rel}: {old!r}")
        path.write_text(text.replace(old, new))
    dist = out / "dist"
    dist.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "--wheel-dir", str(dist), str(src)],
        check=True, timeout=PIP_S, capture_output=True,
    )  # fmt: skip
    shutil.rmtree(src)
    wheels = sorted(dist.glob("estran-*.whl"), key=lambda p: p.stat().st_mtime)
    return wheels[-1]


def wheelhouse(wheel: Path, extra: str, out: Path) -> Path:
    """The wheels `estran[extra]` needs, beside the estran wheel itself, in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--only-binary", ":all:",
         "--dest", str(out), f"{wheel}[{extra}]"],
        check=True, timeout=PIP_S, capture_output=True,
    )  # fmt: skip
    return out


_CACHE: dict[object, Path] = {}
_LOCK = threading.Lock()
_ROOT: list[Path] = []


def _root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="estran-wheels-")))
        atexit.register(shutil.rmtree, _ROOT[0], True)
    return _ROOT[0]


def built_wheels(
    specs: Sequence[tuple[str, Mapping[str, tuple[str, str]] | None]], extra: str = "edge"
) -> tuple[dict[str, Path], Path]:
    """Wheels for (version, patches) specs, built in parallel once per test session, and the
    wheelhouse of `extra` (dependency wheels only, the estran wheel left out)."""

    def one(spec: tuple[str, Mapping[str, tuple[str, str]] | None]) -> Path:
        version, patches = spec
        key = (version, tuple(sorted((patches or {}).items())))
        with _LOCK:
            if key in _CACHE:
                return _CACHE[key]
        wheel = build_wheel(
            _root() / f"{version}-{len(_CACHE)}-{threading.get_ident()}", version, patches
        )
        with _LOCK:
            return _CACHE.setdefault(key, wheel)

    with ThreadPoolExecutor(max_workers=3) as pool:
        wheels = list(pool.map(one, specs))
    house_key = ("wheelhouse", extra)
    with _LOCK:
        house = _CACHE.get(house_key)
    if house is None:
        house = wheelhouse(wheels[0], extra, _root() / f"wheelhouse-{extra}")
        for wheel in house.glob("estran-*.whl"):
            wheel.unlink()
        with _LOCK:
            _CACHE[house_key] = house
    return {spec[0]: wheel for spec, wheel in zip(specs, wheels, strict=True)}, house
