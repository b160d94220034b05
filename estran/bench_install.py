"""`estran bench install`: what a gateway installs, against what every gateway installed before
the extras (issue 10): the size on disk of a fresh virtual environment with `estran[edge]`,
and the daemon's RSS with 50 sensors running from it.

Anchor, in the same run: a fresh virtual environment with `estran[edge,hub,sim]` (FastAPI,
uvicorn, psycopg, amqtt, bumble... : what every gateway installed), and the same daemon
measurement from it. Both are built from this tree's wheel (`pip wheel --no-deps`), their
dependencies from pip's index or cache (as `make install` gets them).

Size: the bytes of the files under the environment (apparent size, symbolic links not
followed: the interpreter is a link to the system's in both) and the disk blocks they take;
the number of distributions. RSS: `estran bench edge`'s measurement (its serial simulators,
its configuration, `--sensors`, `--soak`), the daemon started with each environment's
interpreter. Targets: size at most half of the anchor's; RSS not above 32.6 MB (the figure
of docs/benchmarks.md, issue 5's measurement before the extras).

Progress goes to stderr; the JSON object is the last line of stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

REPO = Path(__file__).resolve().parents[1]
TARGET_SIZE_RATIO = 0.5
TARGET_RSS_MB = 32.6  # docs/benchmarks.md: the daemon with 50 sensors before the extras
INSTALLS = {"edge": "edge", "anchor": "edge,hub,sim"}


def _log(message: str) -> None:
    click.echo(message, err=True)


def _wheel(out: Path) -> Path:
    """This tree's wheel (no dependencies), built from a copy of its tracked files (a build
    leaves `build/` and `*.egg-info` behind: not in the checkout)."""
    files = subprocess.run(
        ["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True, timeout=60
    ).stdout.decode()
    src = out / "src"
    for rel in filter(None, files.split("\0")):
        if rel.startswith(("hil-tests/", "docs/", ".ci/")) or "/tests/" in rel:
            continue
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, src / rel)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
         "-w", str(out), str(src)],
        check=True, timeout=600, capture_output=True,
    )  # fmt: skip
    (wheel,) = out.glob("estran-*.whl")
    return wheel


def _venv(where: Path, wheel: Path, extras: str) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    python = where / "bin" / "python"
    started = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
         f"{wheel}[{extras}]"],
        check=True, timeout=1200, capture_output=True,
    )  # fmt: skip
    _log(f"  estran[{extras}] installed in {time.monotonic() - started:.0f} s")
    return python


def _size(root: Path) -> tuple[int, int]:
    """(apparent bytes, bytes of disk blocks) of the files under `root`, links not followed."""
    apparent = blocks = 0
    for directory, _, files in os.walk(root):
        for name in files:
            st = os.lstat(os.path.join(directory, name))
            apparent += st.st_size
            blocks += st.st_blocks * 512
    return apparent, blocks


def _distributions(python: Path) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "list", "--format", "json"],
        check=True, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    return sorted(str(p["name"]).lower() for p in json.loads(out))


def measure(sensors: int, soak: float, warmup: float, rss: bool) -> dict[str, Any]:
    from estran.bench_edge import measure as measure_daemon

    root = Path(tempfile.mkdtemp(prefix="estran-bench-install-"))
    try:
        _log("building the wheel of this tree")
        wheel = _wheel(root / "wheel")
        installs: dict[str, Any] = {}
        for name, extras in INSTALLS.items():
            _log(f"{name}: a fresh virtual environment with estran[{extras}]")
            venv = root / name
            python = _venv(venv, wheel, extras)
            apparent, blocks = _size(venv)
            dists = _distributions(python)
            entry: dict[str, Any] = {
                "extras": extras,
                "size_mb": round(apparent / 1e6, 1),
                "disk_mb": round(blocks / 1e6, 1),
                "distributions": len(dists),
                "names": dists,
            }
            if rss:
                _log(f"{name}: the daemon with {sensors} sensors, soak {soak:g} s")
                daemon = measure_daemon(sensors, 100.0, soak, warmup, "sim", 1.0, str(python))
                entry["daemon"] = {
                    k: daemon[k]
                    for k in ("rss_mb", "rss_last_mb", "rate_measured", "cpu_pct", "daemon_exit")
                }
                entry["daemon"]["anchor"] = daemon["anchor"]
            installs[name] = entry
            shutil.rmtree(venv, ignore_errors=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    edge, anchor = installs["edge"], installs["anchor"]
    ratio = edge["size_mb"] / anchor["size_mb"] if anchor["size_mb"] else None
    result: dict[str, Any] = {
        "bench": "install",
        "sensors": sensors,
        "edge": edge,
        "anchor": anchor,
        "size_ratio": None if ratio is None else round(ratio, 3),
        "not_on_a_gateway": sorted(set(anchor["names"]) - set(edge["names"])),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "targets": {"size_ratio": TARGET_SIZE_RATIO, "rss_mb": TARGET_RSS_MB},
    }
    result["pass"] = {"size": ratio is not None and ratio <= TARGET_SIZE_RATIO}
    if rss:
        result["pass"]["rss"] = edge["daemon"]["rss_mb"] <= TARGET_RSS_MB
    for entry in (edge, anchor):
        del entry["names"]
    return result


@click.command("install")
@click.option("--json", "as_json", is_flag=True, help="Print only the JSON object (last line).")
@click.option("--sensors", default=50, show_default=True, help="Sensors of the daemon.")
@click.option("--soak", default=30.0, show_default=True, help="Seconds the RSS is sampled.")
@click.option("--warmup", default=10.0, show_default=True, help="Seconds before measuring.")
@click.option("--no-rss", is_flag=True, help="Sizes only (no daemon).")
def bench_install(as_json: bool, sensors: int, soak: float, warmup: float, no_rss: bool) -> None:
    """Installed size and daemon RSS of `estran[edge]` beside every extra (today's gateway)."""
    if sys.platform != "linux":
        raise click.ClickException("this bench reads /proc: Linux only")
    try:
        result = measure(sensors, soak, warmup, not no_rss)
    except subprocess.CalledProcessError as e:
        raise click.ClickException(
            f"{' '.join(map(str, e.cmd[:6]))}... failed: {(e.stderr or b'')[-500:]!r}"
        ) from e
    if not as_json:
        edge, anchor = result["edge"], result["anchor"]
        _log(
            f"size: edge {edge['size_mb']} MB ({edge['distributions']} distributions), "
            f"anchor {anchor['size_mb']} MB ({anchor['distributions']}): "
            f"ratio {result['size_ratio']} (target <= {TARGET_SIZE_RATIO})"
        )
        if "daemon" in edge:
            _log(
                f"daemon RSS, {sensors} sensors: edge {edge['daemon']['rss_mb']} MB, "
                f"anchor {anchor['daemon']['rss_mb']} MB (target <= {TARGET_RSS_MB})"
            )
    click.echo(json.dumps(result))


__all__ = ["bench_install", "measure"]
