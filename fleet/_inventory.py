"""The Ansible inventory of the fleet, from the registry (docs/updates.md, "Inventory").

How Ansible reaches a gateway (`ansible_host`, `ansible_port`, `ansible_user`,
`estran_root`, ...) is kept as host variables at three levels, merged like Ansible's own
precedence: `fleet` (every gateway), a `group`, a `gateway`. `inventory()` gives Ansible's
JSON inventory format (the one of an inventory script's `--list`):

    {"_meta": {"hostvars": {"marina-001": {..., "estran_gateway_id": "marina-001",
                                           "estran_hub_group": "marina", "estran_hub_state": "active",
                                           "estran_hub_software": "1.0.1", ...}}},
     "all": {"children": ["gateways", "revoked", "marina", ...]},
     "gateways": {"hosts": [active gateways], "vars": {fleet vars}},
     "marina": {"hosts": [...], "vars": {group vars}},
     "revoked": {"hosts": [...]}}

The registry's facts are named `estran_hub_*` (the role's own `estran_group` is the daemon's
Unix group, not the fleet group). No secret belongs here (passwords, tokens, keys' contents): the registry refuses variables
named like one; pass them with a vault or `-e`.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Literal

from fleet._errors import FleetError, NotFound
from fleet._releases import Releases

VarScope = Literal["fleet", "group", "gateway"]
RESERVED_GROUPS = ("all", "ungrouped", "gateways", "revoked")
MAX_VARS_BYTES = 16 << 10
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SECRET = re.compile(r"pass|secret|token|private_key$|vault", re.I)
_ALLOWED_SECRETISH = {"ansible_ssh_private_key_file", "ansible_private_key_file"}

_SQL = """
CREATE TABLE IF NOT EXISTS hostvars (
    scope TEXT NOT NULL, name TEXT NOT NULL, vars TEXT NOT NULL, updated_ms INTEGER NOT NULL,
    updated_by TEXT NOT NULL, PRIMARY KEY (scope, name))
"""


def inventory_group(group: str) -> str:
    """The Ansible group of a fleet group (`group_` before a name Ansible reserves)."""
    return f"group_{group}" if group in RESERVED_GROUPS else group


def check_vars(variables: Mapping[str, object]) -> dict[str, object]:
    """Host variables, checked: Ansible names, JSON values, no secret."""
    out: dict[str, object] = {}
    for key, value in variables.items():
        if not _NAME.match(key):
            raise FleetError(f"host variable {key!r}: not an Ansible variable name")
        if _SECRET.search(key) and key not in _ALLOWED_SECRETISH:
            raise FleetError(
                f"host variable {key!r} looks like a secret: the inventory holds none "
                "(use an Ansible vault or -e)"
            )
        out[key] = value
    try:
        size = len(json.dumps(out))
    except (TypeError, ValueError) as e:
        raise FleetError(f"host variables are JSON values: {e}") from None
    if size > MAX_VARS_BYTES:
        raise FleetError(f"host variables: at most {MAX_VARS_BYTES} bytes of JSON")
    return out


class Inventory(Releases):
    def __init__(self, data_dir: Path, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(data_dir, clock=clock)
        with self._lock:
            self._db.execute(_SQL)

    def set_hostvars(
        self,
        scope: VarScope,
        name: str | None,
        variables: Mapping[str, object],
        actor: str,
        *,
        replace: bool = False,
    ) -> dict[str, object]:
        """Merge `variables` into (or, `replace`, replace) the host variables of a scope; a
        None value removes that variable. Returns the scope's variables."""
        key = "" if scope == "fleet" else (name or "")
        if scope == "group":
            self.group(key)
        elif scope == "gateway":
            self.gateway(key)
        elif scope != "fleet":
            raise FleetError(f"unknown scope {scope!r}")
        given = check_vars(variables)
        with self._tx() as db:
            row = db.execute(
                "SELECT vars FROM hostvars WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
            current: dict[str, object] = {} if replace or row is None else json.loads(row[0])
            for k, v in given.items():
                if v is None:
                    current.pop(k, None)
                else:
                    current[k] = v
            db.execute(
                "INSERT OR REPLACE INTO hostvars (scope, name, vars, updated_ms, updated_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (scope, key, json.dumps(current, sort_keys=True), self._now_ms(), actor),
            )
            self._audit(
                db, actor, "hostvars.set", f"{scope}:{key}" if key else scope, names=sorted(given)
            )
            self._bump(db)
        return current

    def hostvars(self, scope: VarScope, name: str | None = None) -> dict[str, object]:
        with self._lock:
            row = self._db.execute(
                "SELECT vars FROM hostvars WHERE scope = ? AND name = ?",
                (scope, "" if scope == "fleet" else (name or "")),
            ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def _all_hostvars(self) -> dict[tuple[str, str], dict[str, object]]:
        with self._lock:
            rows = self._db.execute("SELECT scope, name, vars FROM hostvars").fetchall()
        return {(r[0], r[1]): dict(json.loads(r[2])) for r in rows}

    def host(self, gateway_id: str) -> dict[str, object]:
        """The merged host variables of one gateway (fleet, group, gateway) and its facts."""
        g = self.gateway(gateway_id)
        every = self._all_hostvars()
        return {
            **every.get(("fleet", ""), {}),
            **every.get(("group", g.group), {}),
            **every.get(("gateway", g.id), {}),
            "estran_gateway_id": g.id,
            "estran_hub_group": g.group,
            "estran_hub_site": g.site,
            "estran_hub_state": g.state,
            "estran_hub_software": g.software,
            "estran_hub_config_version": g.applied_version,
            "estran_hub_keys": self.hub_keys_b64(),
        }

    def hub_keys_b64(self) -> dict[str, str]:
        """{key id: base64 raw public key} of the hub's active signing keys: provision.yml
        writes them to root's copy of the keys the pull-mode job runner trusts."""
        return {k: base64.b64encode(v).decode() for k, v in sorted(self.keys.public_keys().items())}

    def inventory(self, *, merged: bool = True) -> dict[str, object]:
        """Ansible's JSON inventory of the registry. `merged`: every host's variables are
        complete in `_meta.hostvars` (fleet, group and gateway merged); otherwise the fleet's
        and groups' variables are the groups' `vars`, as Ansible merges them."""
        every = self._all_hostvars()
        gateways = self.gateways()
        hostvars: dict[str, object] = {}
        groups: dict[str, list[str]] = {}
        active: list[str] = []
        revoked: list[str] = []
        hub_keys = self.hub_keys_b64()
        for g in gateways:
            own: dict[str, object] = {}
            if merged:
                own |= every.get(("fleet", ""), {}) | every.get(("group", g.group), {})
            own |= every.get(("gateway", g.id), {})
            hostvars[g.id] = own | {
                "estran_gateway_id": g.id,
                "estran_hub_group": g.group,
                "estran_hub_site": g.site,
                "estran_hub_state": g.state,
                "estran_hub_software": g.software,
                "estran_hub_config_version": g.applied_version,
                "estran_hub_keys": hub_keys,
            }
            (active if g.state == "active" else revoked).append(g.id)
            if g.state == "active":
                groups.setdefault(inventory_group(g.group), []).append(g.id)
        for grp in self.groups():
            groups.setdefault(inventory_group(grp.name), [])
        out: dict[str, object] = {
            "_meta": {"hostvars": hostvars},
            "all": {"children": ["gateways", "revoked", *sorted(groups)]},
            "gateways": {"hosts": active, "vars": {} if merged else every.get(("fleet", ""), {})},
            "revoked": {"hosts": revoked},
        }
        for name, hosts in sorted(groups.items()):
            fleet_group = name.removeprefix("group_") if name.startswith("group_") else name
            out[name] = {
                "hosts": hosts,
                "vars": {} if merged else every.get(("group", fleet_group), {}),
            }
        return out

    def gateways_matching(self, selector: str) -> list[str]:
        """Active gateway ids a selector names: `all`, `group:NAME`, a gateway id, or several
        of these joined by commas."""
        chosen: list[str] = []
        active = {g.id: g for g in self.gateways() if g.state == "active"}
        for part in (p.strip() for p in selector.split(",")):
            if not part:
                continue
            if part == "all":
                found = list(active)
            elif part.startswith("group:"):
                name = part.removeprefix("group:")
                self.group(name)
                found = [g for g, v in active.items() if v.group == name]
            elif part in active:
                found = [part]
            else:
                raise NotFound(f"{part!r}: no active gateway, nor group:NAME, nor all")
            chosen += [g for g in found if g not in chosen]
        return sorted(chosen)


__all__ = ["RESERVED_GROUPS", "Inventory", "VarScope", "check_vars", "inventory_group"]
