"""One root exception for edge/: every public error class derives from `EdgeError`."""

import importlib
import inspect
import pkgutil

import edge
from edge.errors import EdgeError

# Test equipment shipped in edge, and edge's own tests: not the gateway's errors.
OUTSIDE = ("edge.simulators", "edge.tests")


def _public_errors() -> dict[str, type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for info in pkgutil.walk_packages(edge.__path__, "edge."):
        if info.name.startswith(OUTSIDE) or info.name.endswith(".__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("edge.")
                and not value.__module__.startswith(OUTSIDE)
                and not name.startswith("_")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def test_every_public_error_of_edge_derives_from_edge_error() -> None:
    errors = _public_errors()
    # the roots of each package, at least, are found (the walk is not empty by mistake)
    for root in ("BufferFailure", "ConfigError", "SerialError", "BleError", "UplinkError"):
        assert any(name.endswith(f".{root}") for name in errors), root
    strays = sorted(name for name, cls in errors.items() if not issubclass(cls, EdgeError))
    assert strays == []


def test_typed_errors_keep_their_names_and_other_bases() -> None:
    from edge.sources.ble import BleConfigError
    from edge.sources.serial import PortLost, SerialConfigError

    assert issubclass(SerialConfigError, ValueError)  # callers that catch ValueError still do
    assert issubclass(BleConfigError, ValueError)
    assert issubclass(PortLost, EdgeError)
