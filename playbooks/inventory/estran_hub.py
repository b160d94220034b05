#!/usr/bin/env python3
"""Ansible inventory script: the fleet from the hub's registry, over its HTTP API.

    export ESTRAN_HUB_URL=https://hub.example ESTRAN_HUB_TOKEN_FILE=~/.estran-admin-token
    ansible-playbook -i playbooks/inventory/estran_hub.py playbooks/update.yml -e @release.yml
    ansible-inventory -i playbooks/inventory/estran_hub.py --graph

Groups: `gateways` (every active gateway), one group per fleet group, `revoked`. Host
variables: what `estran fleet hostvars` set (fleet, group, gateway merged), plus
`estran_gateway_id`, `estran_hub_group`, `estran_hub_site`, `estran_hub_state`, `estran_hub_software`,
`estran_hub_config_version`. An admin's API token (ESTRAN_HUB_TOKEN, or a file named by
ESTRAN_HUB_TOKEN_FILE); ESTRAN_HUB_CA names a CA file for a hub with a private certificate.
Standard library only: it runs wherever ansible-playbook does.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path


def fail(message: str) -> None:
    sys.stderr.write(f"estran_hub inventory: {message}\n")
    sys.exit(1)


def fetch() -> dict[str, object]:
    url = os.environ.get("ESTRAN_HUB_URL", "").rstrip("/")
    if not url.startswith(("http://", "https://")):
        fail("set ESTRAN_HUB_URL to the hub's address (https://hub.example)")
    token = os.environ.get("ESTRAN_HUB_TOKEN", "")
    token_file = os.environ.get("ESTRAN_HUB_TOKEN_FILE", "")
    if not token and token_file:
        try:
            token = Path(token_file).expanduser().read_text().strip()
        except OSError as e:
            fail(f"ESTRAN_HUB_TOKEN_FILE: {e}")
    if not token:
        fail("set ESTRAN_HUB_TOKEN or ESTRAN_HUB_TOKEN_FILE (an admin's API token)")
    ca = os.environ.get("ESTRAN_HUB_CA")
    context = ssl.create_default_context(cafile=ca) if ca else None
    request = urllib.request.Request(
        f"{url}/api/v1/fleet/inventory", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30, context=context) as answer:
            value = json.loads(answer.read())
    except urllib.error.HTTPError as e:
        fail(f"{url}: HTTP {e.code}: {e.read()[:300].decode(errors='replace')}")
    except (urllib.error.URLError, OSError, ValueError) as e:
        fail(f"{url}: {e}")
    if not isinstance(value, dict):
        fail(f"{url}: not an inventory")
    return value


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[1] == "--list":
        print(json.dumps(fetch()))
    elif len(argv) == 3 and argv[1] == "--host":
        hostvars = fetch().get("_meta", {})
        found = hostvars.get("hostvars", {}).get(argv[2], {}) if isinstance(hostvars, dict) else {}
        print(json.dumps(found))
    else:
        fail("usage: estran_hub.py --list | --host HOST")


if __name__ == "__main__":
    main(sys.argv)
