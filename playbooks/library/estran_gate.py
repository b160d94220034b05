"""Ansible module: the gateway's health, read with `estran edge status --json`.

`mode: snapshot` returns what the update must preserve (the running daemon's pid, version
and buffer figures), or `running: false`. `mode: gate` polls until the daemon is healthy or
`timeout` seconds pass, and fails with every reason otherwise. Healthy means:

- the status socket answers, from a daemon started after `before` (a new pid) and running
  `version` when given;
- the uplink is `connected` (`require_uplink`);
- every configured source is `up` and every configured sensor read since the daemon started
  (`require_sources`);
- the buffer is intact: its sequence numbers did not go back (`next_seq`, `durable_seq`) and
  no file was quarantined at open (a damaged buffer) compared with `before`.

It never changes anything (`changed: false`), so it is safe in check mode.
"""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: estran_gate
short_description: Health gate of an Estran gateway (estran edge status --json)
options:
  estran: {type: path, required: true, description: "the estran command to run"}
  config: {type: path, required: true}
  mode: {choices: [snapshot, gate], default: gate}
  version: {type: str}
  before: {type: dict, default: {}}
  timeout: {type: float, default: 60}
  require_uplink: {type: bool, default: true}
  require_sources: {type: bool, default: true}
"""

BUFFER_KEYS = ("next_seq", "durable_seq", "pending", "quarantined_files", "quarantined_readings")


def status(estran: str, config: str) -> dict[str, Any] | None:
    try:
        out = subprocess.run(
            [estran, "edge", "status", "--json", "--config", config],
            capture_output=True, text=True, timeout=20, check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        snapshot = json.loads(out.stdout)
    except ValueError:
        return None
    return snapshot if isinstance(snapshot, dict) else None


def summary(snapshot: dict[str, Any] | None) -> dict[str, Any]:
    if snapshot is None:
        return {"running": False}
    buffer = snapshot.get("buffer") or {}
    uplink = snapshot.get("uplink") or {}
    return {
        "running": True,
        "pid": snapshot.get("pid"),
        "software": snapshot.get("software"),
        "started_ms": snapshot.get("started_ms"),
        "uplink": uplink.get("state"),
        "sources": {n: s.get("state") for n, s in (snapshot.get("sources") or {}).items()},
        "buffer": {k: buffer.get(k) for k in BUFFER_KEYS},
    }


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0


def reasons(
    snapshot: dict[str, Any] | None,
    *,
    version: str | None,
    before: dict[str, Any],
    require_uplink: bool,
    require_sources: bool,
) -> list[str]:
    if snapshot is None:
        return ["the daemon does not answer on its status socket"]
    found: list[str] = []
    if before.get("running") and snapshot.get("pid") == before.get("pid"):
        found.append(f"still the daemon started before the update (pid {before.get('pid')})")
    if version and snapshot.get("software") != version:
        found.append(f"the daemon runs {snapshot.get('software')}, not {version}")
    uplink = (snapshot.get("uplink") or {}).get("state")
    if require_uplink and uplink != "connected":
        found.append(f"uplink {uplink or 'absent'}")
    if require_sources:
        started = _int(snapshot.get("started_ms"))
        for name, source in sorted((snapshot.get("sources") or {}).items()):
            if source.get("state") != "up":
                found.append(f"source {name} {source.get('state')}")
        for name, sensor in sorted((snapshot.get("sensors") or {}).items()):
            if _int(sensor.get("last_seen_ms")) < started:
                found.append(f"sensor {name} not read since the daemon started")
    buffer = snapshot.get("buffer") or {}
    old = (before.get("buffer") or {}) if before.get("running") else {}
    for key in ("next_seq", "durable_seq"):
        if key in old and _int(buffer.get(key)) < _int(old.get(key)):
            found.append(f"buffer {key} went back: {old.get(key)} -> {buffer.get(key)}")
    for key in ("quarantined_files", "quarantined_readings"):
        if key in old and _int(buffer.get(key)) > _int(old.get(key)):
            found.append(f"buffer damaged at open: {key} {old.get(key)} -> {buffer.get(key)}")
    return found


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "estran": {"type": "path", "required": True},
            "config": {"type": "path", "required": True},
            "mode": {"choices": ["snapshot", "gate"], "default": "gate"},
            "version": {"type": "str"},
            "before": {"type": "dict", "default": {}},
            "timeout": {"type": "float", "default": 60.0},
            "require_uplink": {"type": "bool", "default": True},
            "require_sources": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["mode"] == "snapshot":
        module.exit_json(changed=False, **summary(status(p["estran"], p["config"])))
    start = time.monotonic()
    deadline = start + p["timeout"]
    while True:
        snapshot = status(p["estran"], p["config"])
        found = reasons(
            snapshot,
            version=p["version"],
            before=p["before"],
            require_uplink=p["require_uplink"],
            require_sources=p["require_sources"],
        )
        if not found:
            module.exit_json(
                changed=False, healthy=True, waited_s=round(time.monotonic() - start, 2),
                **summary(snapshot),
            )  # fmt: skip
        if time.monotonic() >= deadline:
            module.fail_json(
                msg="health gate failed: " + "; ".join(found), healthy=False, reasons=found,
                **summary(snapshot),
            )  # fmt: skip
        time.sleep(0.5)


if __name__ == "__main__":
    main()
