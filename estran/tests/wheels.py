"""Wheels of this repository for tests: the release a gateway installs, at any version.

`build_wheel` copies the source tree (tracked files only), optionally sets another version
and applies text patches (a deliberately broken release), and builds one wheel with pip.
`wheelhouse` downloads the dependency wheels of an extra once (pip's cache makes it cheap),
so that installs into fresh virtual environments run with `--no-index` and never wait on
the network: the same layout as the offline wheelhouse of a release bundle (docs/updates.md).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["REPO", "build_wheel", "wheelhouse"]

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
