"""A ``ble.backend`` value, parsed: what the configuration names, without bleak.

Apart from `edge.sources.ble._backend` (which opens it with bleak) so that reading a
configuration never imports bleak: a gateway without BLE does not pay its memory
(docs/benchmarks.md, Gateway daemon).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from edge.sources.ble._errors import BleConfigError
from protocols import settings

DEFAULT_BACKEND = "bluez"


@dataclass(frozen=True, slots=True)
class BackendSpec:
    """A parsed ``ble.backend`` value."""

    kind: Literal["bluez", "bumble"]
    target: str | None = None  # the BlueZ adapter (hci0), or the bumble transport spec

    def __str__(self) -> str:
        return self.kind if self.target is None else f"{self.kind}:{self.target}"


def parse_backend(text: str) -> BackendSpec:
    """``bluez`` | ``bluez:hciN`` | ``bumble:<bumble transport spec>`` -> BackendSpec.

    ``bleak`` is accepted for ``bluez``. (The configuration file may also give the kind and
    the adapter or transport separately: `backend_from_table`.)"""
    return backend_from_table({"backend": text})


def backend_from_table(table: Mapping[str, object]) -> BackendSpec:
    """The backend of a ``[ble]`` configuration table, read by the schema's rule
    (`protocols.settings.ble_backend`): ``backend = "bluez"`` / ``"bumble:<transport>"``
    alone, or ``backend = "bluez"`` (or ``"bleak"``) with ``adapter = "hci0"``, or
    ``backend = "bumble"`` with ``transport = "<bumble transport spec>"``."""
    backend = table.get("backend", DEFAULT_BACKEND)
    adapter = table.get("adapter")
    transport = table.get("transport")
    for name, value in (("backend", backend), ("adapter", adapter), ("transport", transport)):
        if value is not None and not isinstance(value, str):
            raise BleConfigError(f"ble.{name}", "must be a string")
    try:
        kind, target = settings.ble_backend(str(backend), adapter, transport)  # type: ignore[arg-type]
    except ValueError as e:
        field, _, message = str(e).partition(": ")
        raise BleConfigError(f"ble.{field}", message) from e
    return BackendSpec("bumble" if kind == "bumble" else "bluez", target)
