"""The hub's validation of a desired configuration: `protocols.settings`, the one schema the
gateway's loader reads too (docs/configuration.md).

A layer is checked on its own (`LAYER`: types, limits, choices, unknown keys; what belongs
to the gateway alone refused), then every effective document it reaches (`HUB`: the same
checks as the gateway's loader, rules across fields included) before anything is stored or
signed: a document the hub signs is one the gateway accepts
(fleet/tests/test_settings_agree.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from fleet._errors import ConfigRejected, SchemaIssue
from protocols import settings


def check(document: Mapping[str, object], *, layer: bool = False) -> list[SchemaIssue]:
    """Every problem of an effective document (or of one `layer`); empty when it is valid."""
    mode = settings.LAYER if layer else settings.HUB
    return [SchemaIssue(i.path, i.message) for i in settings.check(dict(document), mode)]


def validate(document: Mapping[str, object], *, layer: bool = False) -> None:
    """Raise ConfigRejected naming every field that is wrong."""
    issues = check(document, layer=layer)
    if issues:
        raise ConfigRejected(issues)


__all__ = ["check", "validate"]
