"""pytest and rigs: `pytest hil-tests --rig hil-tests/bench.yaml`.

A test says what it needs, never where it is::

    @pytest.mark.needs("serial.tic", "broker", "database", "hub", "gateway")
    async def test_linky_readings_reach_the_hub(rig: Rig) -> None:
        tic = await rig.serial("serial.tic")
        ...

- A test whose needs the rig lacks is reported *not applicable*: skipped with the reason
  ``not applicable on rig NAME: needs X, Y`` and counted in the summary. Under CI=true on a
  rig whose file says ``complete: true`` (sim.yaml), a missing capability fails the test:
  CI runs everything.
- A capability of no known family in a marker is a usage error at collection.
- `rig` (the fixture) only opens what the test declared; a test that reaches for more fails.
- An `Unavailable` resource during a test (no mosquitto binary, PostgreSQL down, an adapter
  unplugged) skips it with the reason, or fails it under CI=true.

The rig file is `--rig PATH`, else $ESTRAN_RIG, else hil-tests/sim.yaml of the rootdir (what
`make test` passes). It is loaded once, when the first test with `needs` runs.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Generator
from pathlib import Path

import pytest

from estran.rig._env import EnvError, RigEnv, check_capability, load_env
from estran.rig._errors import Unavailable
from estran.rig._rig import Rig

_ENV = pytest.StashKey[RigEnv]()
_NOT_APPLICABLE = pytest.StashKey[list[tuple[str, str]]]()
DEFAULT_RIG = Path("hil-tests") / "sim.yaml"


def _ci() -> bool:
    return os.environ.get("CI") == "true"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("rig", "hardware-in-the-loop rigs (estran.rig)")
    group.addoption(
        "--rig",
        default=None,
        metavar="PATH",
        help="the rig's environment file (default: $ESTRAN_RIG, else hil-tests/sim.yaml)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "needs(*capabilities): what the test needs of the rig (serial.tic, broker, ...); "
        "not applicable on a rig without it",
    )
    config.stash[_NOT_APPLICABLE] = []


def rig_path(config: pytest.Config) -> Path:
    given = config.getoption("--rig") or os.environ.get("ESTRAN_RIG")
    return Path(given) if given else config.rootpath / DEFAULT_RIG


def rig_env(config: pytest.Config) -> RigEnv:
    if _ENV not in config.stash:
        path = rig_path(config)
        try:
            config.stash[_ENV] = load_env(path)
        except EnvError as e:
            raise pytest.UsageError(f"--rig: {e}") from e
    return config.stash[_ENV]


def needs_of(item: pytest.Item) -> tuple[str, ...]:
    names: list[str] = []
    for marker in item.iter_markers("needs"):
        names += [str(a) for a in marker.args]
    return tuple(dict.fromkeys(names))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        for capability in needs_of(item):
            try:
                check_capability(capability)
            except EnvError as e:
                raise pytest.UsageError(f"{item.nodeid}: @needs: {e}") from e


def pytest_runtest_setup(item: pytest.Item) -> None:
    needs = needs_of(item)
    if not needs:
        return
    env = rig_env(item.config)
    missing = env.missing(needs)
    if not missing:
        return
    reason = f"not applicable on rig {env.name}: needs {', '.join(missing)}"
    if _ci() and env.complete:
        pytest.fail(f"{reason} (CI=true and rig {env.name} is complete: it must have them)")
    item.config.stash[_NOT_APPLICABLE].append((item.nodeid, reason))
    pytest.skip(reason)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if call.excinfo is not None and call.excinfo.errisinstance(Unavailable) and not _ci():
        report.outcome = "skipped"
        report.longrepr = (str(item.path), 0, f"Skipped: unavailable: {call.excinfo.value}")
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    found = terminalreporter.config.stash.get(_NOT_APPLICABLE, [])
    if not found:
        return
    env = terminalreporter.config.stash[_ENV]
    terminalreporter.section(f"not applicable on rig {env.name} ({env.path})")
    for nodeid, reason in found:
        terminalreporter.line(f"{nodeid}: {reason}")
    terminalreporter.line(f"{len(found)} not applicable")


@pytest.fixture
def rig_environment(request: pytest.FixtureRequest) -> RigEnv:
    """The rig's environment file, parsed."""
    return rig_env(request.config)


@pytest.fixture
async def rig(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Rig]:
    """The rig, limited to what the test's `needs` marker declares; everything it started
    is stopped after the test."""
    env = rig_env(request.config)
    async with Rig(env, tmp_path / "rig", allowed=needs_of(request.node)) as opened:
        yield opened


__all__ = ["DEFAULT_RIG", "needs_of", "rig_env", "rig_path"]
