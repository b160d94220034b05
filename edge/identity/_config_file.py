"""The gateway's configuration file as enrollment leaves it: written when there is none,
updated in place otherwise (only the enrolled fields; every other line, comments included,
is kept as it was), atomically, and checked by the loader before it replaces the old one."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

from edge.errors import EdgeError
from edge.identity._storage import atomic_write

_TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]\s*(#.*)?$")
_KEY = re.compile(r"^\s*([A-Za-z0-9_-]+)\s*=")

HEADER = """\
# The gateway's configuration (docs/configuration.md), written by `estran edge enroll`.
# Next: add the sensors. `estran edge probe /dev/ttyUSB0` prints a [[serial]] table for a
# serial port, `estran edge scan` lists the BLE devices nearby ([[ble.devices]]).
"""


class ConfigFileError(EdgeError):
    """The file could not be written or updated; `snippet` is what to paste by hand."""

    def __init__(self, message: str, snippet: str) -> None:
        super().__init__(message)
        self.snippet = snippet


def enrolled_fields(
    gateway_id: str, data_dir: Path, broker: str, credentials: Path
) -> dict[str, dict[str, str]]:
    """What enrollment decides, by table: the rest of the file is the technician's."""
    return {
        "gateway": {"id": gateway_id, "data_dir": str(data_dir)},
        "uplink": {"broker": broker, "credentials_file": str(credentials)},
    }


def snippet(fields: dict[str, dict[str, str]]) -> str:
    out: list[str] = []
    for table, keys in fields.items():
        if out:
            out.append("")
        out.append(f"[{table}]")
        out += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
    return "\n".join(out) + "\n"


def update_text(text: str, fields: dict[str, dict[str, str]]) -> str:
    """`text` with each key of `fields` set in its table: replaced where it is, added at the
    top of its table, or the table appended; nothing else touched."""
    lines = text.splitlines()
    for table, keys in fields.items():
        start = next((i for i, line in enumerate(lines) if _header(line) == table), None)
        if start is None:
            if lines and lines[-1].strip():
                lines.append("")
            lines.append(f"[{table}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in keys.items()]
            continue
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].lstrip().startswith("[")),
            len(lines),
        )
        for key, value in keys.items():
            new = f"{key} = {json.dumps(value)}"
            at = next((i for i in range(start + 1, end) if _key(lines[i]) == key), None)
            if at is None:
                lines.insert(start + 1, new)
                end += 1
            else:
                lines[at] = new
    return "\n".join(lines) + "\n"


def _header(line: str) -> str | None:
    match = _TABLE.match(line)
    return match.group(1) if match else None


def _key(line: str) -> str | None:
    match = _KEY.match(line)
    return match.group(1) if match else None


def write_config(path: Path, fields: dict[str, dict[str, str]]) -> str:
    """Write or update the configuration file at `path`; returns "created" or "updated".
    ConfigFileError (with the snippet to paste) when it cannot."""
    paste = snippet(fields)
    try:
        old = path.read_text() if path.exists() else None
    except OSError as e:
        raise ConfigFileError(f"cannot read {path}: {e.strerror or e}", paste) from e
    text = HEADER + "\n" + paste if old is None else update_text(old, fields)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigFileError(f"{path} is not valid TOML ({e}): not changed", paste) from e
    for table, keys in fields.items():
        got = doc.get(table)
        if not isinstance(got, dict) or any(got.get(k) != v for k, v in keys.items()):
            raise ConfigFileError(f"{path}: its [{table}] could not be updated safely", paste)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        mode = path.stat().st_mode & 0o777 if old is not None else 0o644
        atomic_write(path, text.encode(), mode)
    except OSError as e:
        raise ConfigFileError(f"cannot write {path}: {e.strerror or e}", paste) from e
    return "created" if old is None else "updated"


__all__ = ["ConfigFileError", "enrolled_fields", "snippet", "update_text", "write_config"]
