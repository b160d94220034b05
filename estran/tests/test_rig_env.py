"""Environment files and the pytest plugin: tests selected by what a rig has, a missing
capability reported as not applicable (a failure under CI on a complete rig), never a pass."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edge.config import load_config
from estran.rig import EnvError, GatewayProcess, Rig, RigError, SerialPort, load_env, parse_env
from estran.rig._ble import HardwareRadio
from estran.rig._serial import DeviceSerial

HIL = Path(__file__).resolve().parents[2] / "hil-tests"


def test_sim_and_bench_files_load() -> None:
    sim = load_env(HIL / "sim.yaml")
    bench = load_env(HIL / "bench.yaml")
    assert sim.name == "sim" and sim.complete and not bench.complete
    # the bench example covers every capability the simulated rig has but the extra variants
    assert set(sim.resources) - set(bench.resources) == {"broker.embedded", "database.postgresql"}


def test_the_bench_example_writes_a_gateway_configuration_the_gateway_accepts(
    tmp_path: Path,
) -> None:
    bench = load_env(HIL / "bench.yaml")
    ports = [
        DeviceSerial(bench.resources[c]).port
        for c in ("serial.tic", "serial.modbus", "serial.mbus")
    ]
    radio = HardwareRadio(bench.resources["ble"]).radio
    gateway = GatewayProcess(tmp_path, "gw-bench", "mqtt://127.0.0.1:1883", serial=ports, ble=radio)
    config = load_config(gateway.config)
    written = tomllib.loads(gateway.config.read_text())
    assert [p["path"] for p in written["serial"]] == [p.path for p in ports]
    assert config is not None


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        ([], "a mapping"),
        ({"rig": "x"}, "`resources`"),
        ({"rig": "x", "resources": {"laser": {"driver": "simulator"}}}, "unknown capability"),
        ({"rig": "x", "resources": {"serial.tic": {"driver": "usb"}}}, "unknown driver 'usb'"),
        ({"rig": "x", "resources": {"serial.TIC": {"driver": "device"}}}, "unknown capability"),
        ({"rig": "x", "resources": {"broker": "mosquitto"}}, "`driver`"),
        ({"rig": "x", "colour": 1, "resources": {"hub": {"driver": "process"}}}, "unknown keys"),
        (
            {"rig": "x", "resources": {"broker": {"driver": "external", "url": "${NOPE_X}"}}},
            "NOPE_X",
        ),
    ],
)
def test_a_bad_environment_file_says_why(document: object, complaint: str) -> None:
    with pytest.raises(EnvError, match=complaint.replace("(", r"\(").replace("$", r"\$")):
        parse_env(document)


def test_variables_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RIG_BROKER", "mqtt://10.0.0.2:1883")
    doc = {
        "rig": "x",
        "resources": {
            "broker": {"driver": "external", "url": "${RIG_BROKER}"},
            "database": {"driver": "postgresql", "dsn": "${RIG_NOPE:-postgresql://h/db}"},
        },
    }
    env = parse_env(doc)
    assert env.resource("broker").text("url") == "mqtt://10.0.0.2:1883"
    assert env.resource("database").text("dsn") == "postgresql://h/db"


def test_a_device_port_needs_its_protocol_and_devices() -> None:
    env = parse_env({"rig": "x", "resources": {"serial.tic": {"driver": "device", "path": "/x"}}})
    with pytest.raises(EnvError, match="protocol and devices"):
        DeviceSerial(env.resource("serial.tic"))


async def test_an_unplugged_adapter_is_unavailable_not_a_pass(tmp_path: Path) -> None:
    from estran.rig import Unavailable

    port = {"protocol": "tic", "devices": [{"sensor": "l"}]}
    doc = {
        "rig": "x",
        "resources": {
            "serial.tic": {"driver": "device", "path": str(tmp_path / "ttyUSB9"), "port": port}
        },
    }
    async with Rig(parse_env(doc), tmp_path) as rig:
        with pytest.raises(Unavailable, match="not plugged in"):
            await rig.serial("serial.tic")


async def test_a_rig_refuses_what_the_test_did_not_declare(tmp_path: Path) -> None:
    env = load_env(HIL / "sim.yaml")
    async with Rig(env, tmp_path, allowed=("serial.tic",)) as rig:
        with pytest.raises(RigError, match="not in this test's needs"):
            await rig.broker()


def _suite(pytester: pytest.Pytester, complete: bool) -> Path:
    rig = pytester.path / "tiny.yaml"
    rig.write_text(
        f"rig: tiny\ncomplete: {'true' if complete else 'false'}\n"
        "resources:\n  serial.tic: {driver: simulator, spec: linky-historique}\n"
    )
    pytester.makepyfile(
        test_caps="""
        import pytest

        @pytest.mark.needs("serial.tic")
        def test_has():
            pass

        @pytest.mark.needs("serial.tic", "ble")
        def test_lacks():
            raise AssertionError("must not run")

        def test_plain():
            pass
        """
    )
    return rig


def test_a_missing_capability_is_not_applicable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CI", raising=False)
    rig = _suite(pytester, complete=True)
    result = pytester.runpytest("-p", "estran.rig.pytest_plugin", "--rig", str(rig), "-rs")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*not applicable on rig tiny: needs ble*", "1 not applicable"])


def test_under_ci_a_complete_rig_must_have_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    rig = _suite(pytester, complete=True)
    result = pytester.runpytest("-p", "estran.rig.pytest_plugin", "--rig", str(rig))
    result.assert_outcomes(passed=2, errors=1)  # fails in its setup: an error, never a pass
    result.stdout.fnmatch_lines(["*rig tiny is complete: it must have them*"])


def test_under_ci_a_bench_rig_still_says_not_applicable(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CI", "true")
    rig = _suite(pytester, complete=False)
    result = pytester.runpytest("-p", "estran.rig.pytest_plugin", "--rig", str(rig))
    result.assert_outcomes(passed=2, skipped=1)


def test_an_unknown_capability_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_typo="""
        import pytest

        @pytest.mark.needs("seriall.tic")
        def test_typo():
            pass
        """
    )
    result = pytester.runpytest("-p", "estran.rig.pytest_plugin")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*unknown capability 'seriall.tic'*"])


def test_the_serial_port_lists_its_sensors() -> None:
    port = SerialPort("serial.x", {"path": "/x", "devices": [{"sensor": "a"}, {"sensor": "b"}]})
    assert port.sensors == ["a", "b"] and port.path == "/x"


@pytest.mark.parametrize(("ci", "outcome"), [("", "skipped"), ("true", "failed")])
def test_an_unavailable_resource_skips_or_fails_under_ci(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setenv("CI", ci)
    pytester.makepyfile(
        test_gone="""
        from estran.rig import Unavailable

        def test_adapter():
            raise Unavailable("serial.tic: /dev/serial/by-id/x is not plugged in")
        """
    )
    result = pytester.runpytest("-p", "estran.rig.pytest_plugin", "-rs")
    result.assert_outcomes(**{outcome: 1})
    if outcome == "skipped":
        result.stdout.fnmatch_lines(["*unavailable: serial.tic: * is not plugged in*"])
