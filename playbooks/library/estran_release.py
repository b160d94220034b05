"""Ansible module: the releases of an Estran gateway, side by side (releases/<version>).

`state: present` installs `version` into `releases_dir/<version>` unless it is there already
(its marker names the same wheel checksum): verifies the wheel's SHA-256, makes a virtual
environment from `python`, installs `estran[extra]` with that interpreter's pip (`pip
--python`; from the wheelhouse only, `--no-index`, when one is given: a directory or a .tar
of wheels), then runs the release's self-check: its version, the daemon's modules, and the
configuration in place loaded by this release. An installed release is self-checked again,
unchanged. The wheel and wheelhouse are removed once installed. A release that fails half-way
is removed, never left half-installed.

`state: absent` removes `version` (a release that failed its gate); `state: pruned` removes
every release that neither `current` nor `previous` points at. Every state returns the
targets of `current` and `previous`. current itself is never touched here (switch.yml).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: estran_release
short_description: Install, self-check and prune Estran releases side by side
options:
  state: {choices: [present, absent, pruned], default: present}
  releases_dir: {type: path, required: true}
  current: {type: path, required: true}
  previous: {type: path, required: true}
  version: {type: str}
  wheel: {type: path}
  sha256: {type: str}
  wheelhouse: {type: path}
  python: {type: path, default: /usr/bin/python3}
  extra: {type: str, default: edge}
  pip_args: {type: list, elements: str, default: []}
  config: {type: path}
"""

MARKER = ".estran-release"
SELF_CHECK = """
import sys, pathlib, estran
if estran.__version__ != sys.argv[1]:
    sys.exit(f"the release says {estran.__version__}, expected {sys.argv[1]}")
import edge.daemon, edge.uplink, edge.buffer, edge.sources.serial, edge.identity, edge.cli.status
from edge.config import load_config
config = pathlib.Path(sys.argv[2])
if sys.argv[2] and config.exists():
    load_config(config)
print("self-check ok:", estran.__version__)
"""


class ReleaseError(Exception):
    pass


def link_target(path: Path) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def run(argv: list[str], what: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if proc.returncode != 0:
        raise ReleaseError(
            f"{what} failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-2000:]}"
        )
    return proc.stdout.strip()


def self_check(release: Path, version: str, config: str | None) -> str:
    return run(
        [str(release / "bin" / "python"), "-c", SELF_CHECK, version, config or ""], "self-check"
    )


def install(p: dict[str, Any], release: Path) -> str:
    wheel = Path(p["wheel"] or "")
    if not wheel.is_file():
        raise ReleaseError(f"the wheel {wheel} is not on the gateway")
    found = sha256(wheel)
    if found != p["sha256"]:  # nothing of it is kept, and nothing is installed
        wheel.unlink()
        house = Path(p["wheelhouse"]) if p["wheelhouse"] else None
        if house is not None and house.is_file():
            house.unlink()
        raise ReleaseError(f"checksum mismatch for {wheel.name}: {found}, expected {p['sha256']}")
    shutil.rmtree(release, ignore_errors=True)
    release.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=release.parent, prefix=".unpack-") as tmp:
        links: list[str] = []
        house = Path(p["wheelhouse"]) if p["wheelhouse"] else None
        if house is not None and house.is_file():
            with tarfile.open(house) as tar:  # flat: wheels only, no paths, no links
                for member in tar.getmembers():
                    name = Path(member.name).name
                    if not member.isfile() or not name.endswith(".whl"):
                        continue
                    source = tar.extractfile(member)
                    if source is not None:
                        with source, open(Path(tmp) / name, "wb") as out:
                            shutil.copyfileobj(source, out)
            links = ["--no-index", "--find-links", tmp]
        elif house is not None:
            links = ["--no-index", "--find-links", str(house)]
        try:
            run([p["python"], "-m", "venv", "--without-pip", str(release)], "venv")
            run(
                [p["python"], "-m", "pip", "--python", str(release / "bin" / "python"), "install",
                 "--quiet", "--disable-pip-version-check", *links, *p["pip_args"],
                 f"{wheel}[{p['extra']}]"],
                "pip install",
            )  # fmt: skip
            out = self_check(release, p["version"], p["config"])
        except BaseException:
            shutil.rmtree(release, ignore_errors=True)
            raise
    (release / MARKER).write_text(p["sha256"] + "\n")
    wheel.unlink()
    if house is not None and house.exists():
        shutil.rmtree(house) if house.is_dir() else house.unlink()
    return out


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "state": {"choices": ["present", "absent", "pruned"], "default": "present"},
            "releases_dir": {"type": "path", "required": True},
            "current": {"type": "path", "required": True},
            "previous": {"type": "path", "required": True},
            "version": {"type": "str"},
            "wheel": {"type": "path"},
            "sha256": {"type": "str"},
            "wheelhouse": {"type": "path"},
            "python": {"type": "path", "default": "/usr/bin/python3"},
            "extra": {"type": "str", "default": "edge"},
            "pip_args": {"type": "list", "elements": "str", "default": []},
            "config": {"type": "path"},
        },
        required_if=[("state", "present", ["version", "sha256"]), ("state", "absent", ["version"])],
        supports_check_mode=True,
    )
    p = module.params
    releases = Path(p["releases_dir"])
    links = {
        "current": link_target(Path(p["current"])),
        "previous": link_target(Path(p["previous"])),
    }
    try:
        if p["state"] == "pruned":
            keep = {Path(t).name for t in links.values() if t}
            gone = (
                sorted(d.name for d in releases.iterdir() if d.is_dir() and d.name not in keep)
                if releases.is_dir()
                else []
            )
            if not keep:
                gone = []  # nothing points anywhere: remove nothing
            if not module.check_mode:
                for name in gone:
                    shutil.rmtree(releases / name)
            module.exit_json(changed=bool(gone), removed=gone, **links)
        release = releases / p["version"]
        if p["state"] == "absent":
            if Path(p["current"]).resolve() == release.resolve():
                module.fail_json(msg=f"{release} is current: switch away from it first", **links)
            changed = release.exists()
            if changed and not module.check_mode:
                shutil.rmtree(release)
            module.exit_json(changed=changed, **links)
        marker = release / MARKER
        installed = marker.is_file() and marker.read_text().strip() == p["sha256"]
        if installed:
            out = self_check(release, p["version"], p["config"])
            module.exit_json(
                changed=False, release_dir=str(release), installed=True, self_check=out, **links
            )
        if module.check_mode:
            module.exit_json(changed=True, release_dir=str(release), installed=False, **links)
        out = install(p, release)
        module.exit_json(
            changed=True, release_dir=str(release), installed=True, self_check=out, **links
        )
    except (ReleaseError, OSError, tarfile.TarError, subprocess.TimeoutExpired) as e:
        module.fail_json(msg=str(e), **links)


if __name__ == "__main__":
    main()
