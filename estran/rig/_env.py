"""Environment files: what a rig has, in YAML, as labgrid's environment files say it.

    rig: sim                       # the rig's name, in every "not applicable" reason
    complete: true                 # CI=true: a test needing what this rig lacks fails
    resources:
      serial.tic: {driver: simulator, spec: linky-historique}
      serial.modbus:
        driver: device
        path: /dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A10K1234-if00-port0
        port: {protocol: modbus, baud: 9600, devices: [{sensor: sdm630, address: 1, map: sdm630}]}
      broker: {driver: mosquitto}
      database.postgresql: {driver: postgresql, dsn: "${ESTRAN_PG:-postgresql://root@127.0.0.1/postgres}"}

A resource is named by the capability it provides (`FAMILY` or `FAMILY.VARIANT`); its
`driver` says how (the drivers of each family are in DRIVERS); the other keys are the
driver's. `${VAR}` and `${VAR:-default}` in strings come from the environment. Every mistake
is an EnvError naming the file, the resource and the key.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from estran.rig._errors import RigError

# family -> drivers that provide it (docs/hil.md describes each)
DRIVERS: Mapping[str, tuple[str, ...]] = {
    "serial": ("simulator", "device"),
    "ble": ("radio-world", "bumble-hci", "bluez"),
    "broker": ("embedded", "mosquitto", "external"),
    "database": ("sqlite", "postgresql"),
    "hub": ("process",),
    "gateway": ("process",),
    "power": ("process-kill", "serial-unplug", "command"),
    "link": ("proxy",),
    "clock": ("faketime",),
}
FAMILIES = tuple(DRIVERS)
_CAPABILITY = re.compile(r"^([a-z]+)(?:\.([a-z0-9][a-z0-9-]*))?$")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class EnvError(RigError):
    """An environment file that cannot be used: the reason names the file and the key."""


def check_capability(name: str) -> str:
    """`name` if it is `FAMILY` or `FAMILY.VARIANT` of a known family; EnvError otherwise."""
    match = _CAPABILITY.match(name)
    if match is None or match.group(1) not in DRIVERS:
        raise EnvError(
            f"unknown capability {name!r}: FAMILY or FAMILY.VARIANT, families "
            + ", ".join(FAMILIES)
        )
    return name


def family(capability: str) -> str:
    return capability.partition(".")[0]


@dataclass(frozen=True, slots=True)
class Resource:
    """One capability of a rig: its driver and the driver's settings."""

    capability: str
    driver: str
    settings: Mapping[str, object]

    def text(self, key: str, default: str | None = None) -> str:
        value = self.settings.get(key, default)
        if not isinstance(value, str) or not value:
            raise EnvError(f"{self.capability}: `{key}` must be a non-empty string")
        return value

    def argv(self, key: str) -> list[str]:
        value = self.settings.get(key)
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise EnvError(f"{self.capability}: `{key}` must be a command, a list of strings")
        return [str(v) for v in value]

    def table(self, key: str) -> Mapping[str, object]:
        value = self.settings.get(key, {})
        if not isinstance(value, Mapping):
            raise EnvError(f"{self.capability}: `{key}` must be a mapping")
        return {str(k): v for k, v in value.items()}

    def tables(self, key: str) -> list[Mapping[str, object]]:
        value = self.settings.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            raise EnvError(f"{self.capability}: `{key}` must be a list of mappings")
        return [{str(k): v for k, v in item.items()} for item in value]


@dataclass(frozen=True, slots=True)
class RigEnv:
    """What an environment file says: the rig's name and its resources by capability."""

    name: str
    path: Path | None
    complete: bool
    resources: Mapping[str, Resource]

    def has(self, capability: str) -> bool:
        return check_capability(capability) in self.resources

    def missing(self, capabilities: tuple[str, ...]) -> list[str]:
        return [c for c in capabilities if not self.has(c)]

    def resource(self, capability: str) -> Resource:
        if not self.has(capability):
            raise EnvError(f"rig {self.name} has no {capability!r}")
        return self.resources[capability]


def _expand(value: object, where: str) -> object:
    if isinstance(value, str):

        def one(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            found = os.environ.get(name, default)
            if found is None:
                raise EnvError(f"{where}: ${{{name}}} is not set (give a default: ${{{name}:-x}})")
            return found

        return _VARIABLE.sub(one, value)
    if isinstance(value, list):
        return [_expand(v, where) for v in value]
    if isinstance(value, dict):
        return {str(k): _expand(v, f"{where}.{k}") for k, v in value.items()}
    return value


def parse_env(data: object, path: Path | None = None) -> RigEnv:
    """A RigEnv from the parsed YAML document; EnvError on anything out of place."""
    where = str(path) if path is not None else "environment"
    if not isinstance(data, dict):
        raise EnvError(f"{where}: a mapping with `rig` and `resources` expected")
    unknown = set(data) - {"rig", "description", "complete", "resources"}
    if unknown:
        raise EnvError(f"{where}: unknown keys {sorted(unknown)}")
    name = data.get("rig")
    if not isinstance(name, str) or not name:
        raise EnvError(f"{where}: `rig` (the rig's name) must be a non-empty string")
    complete = data.get("complete", False)
    if not isinstance(complete, bool):
        raise EnvError(f"{where}: `complete` must be true or false")
    raw = data.get("resources")
    if not isinstance(raw, dict) or not raw:
        raise EnvError(f"{where}: `resources` must be a mapping of capability -> driver")
    resources: dict[str, Resource] = {}
    for capability, spec in raw.items():
        try:
            check_capability(str(capability))
        except EnvError as e:
            raise EnvError(f"{where}: {e}") from None
        if not isinstance(spec, dict) or not isinstance(spec.get("driver"), str):
            raise EnvError(f"{where}: {capability}: a mapping with a `driver` expected")
        driver = spec["driver"]
        allowed = DRIVERS[family(capability)]
        if driver not in allowed:
            raise EnvError(
                f"{where}: {capability}: unknown driver {driver!r} (one of {', '.join(allowed)})"
            )
        settings = _expand({k: v for k, v in spec.items() if k != "driver"}, capability)
        assert isinstance(settings, dict)
        resources[capability] = Resource(capability, driver, settings)
    return RigEnv(name, path, complete, resources)


def load_env(path: Path) -> RigEnv:
    """Read an environment file (YAML)."""
    import yaml

    try:
        text = path.read_text()
    except OSError as e:
        raise EnvError(f"{path}: {e.strerror or e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise EnvError(f"{path}: not YAML: {e}") from e
    return parse_env(data, path)


__all__ = [
    "DRIVERS",
    "FAMILIES",
    "EnvError",
    "Resource",
    "RigEnv",
    "check_capability",
    "family",
    "load_env",
    "parse_env",
]
