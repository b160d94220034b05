"""The air-quality and water-level examples of docs/configuration.md: the gateway's loader
accepts them and the hub's schema accepts the same document (what an admin pushes from
the hub is what a technician writes on the gateway)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from edge.config import parse_config
from fleet._schema import check

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def _examples() -> list[dict[str, object]]:
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)
    wanted = ('protocol = "pms"', 'protocol = "sds011"', "datum = ")
    return [tomllib.loads(b) for b in blocks if any(w in b for w in wanted)]


def test_gateway_and_hub_accept_the_environment_examples() -> None:
    examples = _examples()
    assert len(examples) >= 2
    protocols = set()
    for document in examples:
        config = parse_config(document)
        protocols |= {port.protocol for port in config.serial}
        layer = {k: v for k, v in document.items() if k != "gateway"}  # id: enrollment's
        assert check(layer) == [], document
    assert {"pms", "sds011", "sps30", "modbus", "sdi12"} <= protocols
    levels = [d for port in parse_config(examples[-1]).serial for d in port.devices]
    assert all(d.level_datum() is not None for d in levels)
