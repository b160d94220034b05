"""The configuration file: every example of docs/configuration.md loads; every error names
its field and says what is wrong; nothing ends in a traceback."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from edge.config import ConfigError, EdgeConfig, load_config, parse_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
GATEWAY = '[gateway]\nid = "gw-test"\n'


def errors_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(tomllib.loads(text))
    return [str(issue) for issue in info.value.issues]


def parse(text: str) -> EdgeConfig:
    return parse_config(tomllib.loads(text))


def doc_examples() -> list[str]:
    return re.findall(r"```toml\n(.*?)```", DOC.read_text(), re.S)


def test_the_documentation_has_an_example_for_every_sensor_kind() -> None:
    blocks = doc_examples()
    text = "\n".join(blocks)
    for protocol in ("tic", "modbus", "mbus", "sdi12", "ultrasonic", "nmea", "pms", "sds011"):
        assert f'protocol = "{protocol}"' in text, protocol
    for kind in ("bthome", "miflora"):
        assert f'kind = "{kind}"' in text, kind
    assert "bind_key" in text
    for map_name in ("sdm630", "soil", "level"):
        assert f'map = "{map_name}"' in text


@pytest.mark.parametrize("index", range(len(doc_examples())))
def test_every_documented_example_loads(index: int) -> None:
    config = parse(doc_examples()[index])
    assert config.gateway.id
    assert config.sensor_ids()
    for sensor_id in config.sensors:
        assert sensor_id in config.sensor_ids()


def test_a_full_configuration_is_typed() -> None:
    config = parse(doc_examples()[-1])
    assert config.buffer.quota_bytes == 512 * 1024 * 1024
    assert config.buffer.max_age_s == 60 * 86400
    assert config.uplink is not None
    assert config.uplink.broker == "mqtt://hub.territoire.example:1883"
    assert config.uplink.state_interval_s == 60
    assert config.daemon.restart_max_s == 60
    assert [p.protocol for p in config.serial] == ["tic", "modbus"]
    assert config.serial[1].devices[0].address == 1
    assert config.ble is not None and str(config.ble.backend) == "bumble:usb:0"
    assert config.ble.source_name == "ble:usb:0"
    sdm = config.sensor("mairie-sdm630")
    assert sdm.dataset == "open" and sdm.report.mode == "aggregate"
    assert sdm.report.window_s == 60
    assert config.sensor("mairie-linky").dataset == "closed"  # default


def test_relative_paths_are_taken_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "edge.toml"
    path.write_text(
        GATEWAY + 'data_dir = "data"\n[uplink]\nbroker = "hub:1883"\n'
        'credentials_file = "broker.cred"\n'
    )
    config = load_config(path)
    assert config.gateway.data_dir == tmp_path / "data"
    assert config.uplink is not None and config.uplink.credentials_file == tmp_path / "broker.cred"
    assert config.gateway.status_socket == tmp_path / "data" / "status.sock"


def test_a_tls_broker_with_the_enrolled_or_a_given_ca(tmp_path: Path) -> None:
    config = parse(GATEWAY + '[uplink]\nbroker = "mqtts://hub.example:8883"\n')
    assert config.uplink is not None and config.uplink.tls and config.uplink.ca_file is None
    assert not parse(GATEWAY + '[uplink]\nbroker = "mqtt://hub"\n').uplink.tls  # type: ignore[union-attr]
    path = tmp_path / "edge.toml"
    path.write_text(GATEWAY + '[uplink]\nbroker = "mqtts://hub"\nca_file = "tls/ca.crt"\n')
    config = load_config(path)
    assert config.uplink is not None and config.uplink.ca_file == tmp_path / "tls" / "ca.crt"


def test_a_serial_device_address_out_of_range_names_the_port_and_device() -> None:
    text = (
        GATEWAY
        + """
[[serial]]
path = "/dev/ttyUSB0"
protocol = "modbus"
[[serial.devices]]
sensor = "a"
address = 1
map = "sdm630"
[[serial]]
path = "/dev/ttyUSB1"
protocol = "modbus"
[[serial.devices]]
sensor = "b"
address = 300
map = "sdm630"
"""
    )
    (error,) = errors_of(text)
    assert error.startswith("serial[1].devices[0].address:")
    assert "1..247" in error and "300" in error


def test_every_problem_is_reported_at_once() -> None:
    text = """
[gateway]
id = "has space"
log_level = "loud"
[buffer]
quota = "lots"
polcy = "drop_oldest"
commit_interval = -1
[uplink]
broker = "http://hub"
[sensors.nobody]
dataset = "open"
"""
    errors = errors_of(text)
    paths = [e.split(":")[0] for e in errors]
    assert paths == [
        "gateway.id",
        "gateway.log_level",
        "buffer.quota",
        "buffer.commit_interval",
        "buffer.polcy",
        "uplink.broker",
        "sensors.nobody",
    ]
    assert "did you mean 'policy'?" in errors[4]
    assert 'must be one of "debug", "info", "warning", "error"; got "loud"' in errors[1]
    assert "no [[serial.devices]] or [[ble.devices]] reads this sensor id" in errors[6]


@pytest.mark.parametrize(
    ("body", "path", "words"),
    [
        ("", "gateway", "required"),
        ('[gateway]\ndata_dir = "/x"', "gateway.id", "required"),
        (GATEWAY + "[buffer]\nquota = 10", "buffer.quota", "at least 1048576 bytes"),
        (GATEWAY + '[buffer]\npolicy = "drop_newest"', "buffer.policy", 'got "drop_newest"'),
        (
            GATEWAY + '[buffer]\ncommit_interval = "1 fortnight"',
            "buffer.commit_interval",
            "duration",
        ),
        (
            GATEWAY + '[uplink]\nbroker = "mqtt://hub"\nca_file = "ca.crt"',
            "uplink.ca_file",
            "mqtts",
        ),
        (GATEWAY + '[uplink]\nbroker = "mqtts://hub"\nca_file = ""', "uplink.ca_file", "empty"),
        (GATEWAY + '[uplink]\nbroker = "https://hub"', "uplink.broker", "mqtts://"),
        (GATEWAY + '[uplink]\nbroker = "hub:99999"', "uplink.broker", "1..65535"),
        (GATEWAY + "[uplink]\nbroker = 1883", "uplink.broker", "must be a string, got 1883"),
        (GATEWAY + '[daemon]\nqueue_size = "big"', "daemon.queue_size", "whole number"),
        (
            GATEWAY + "[daemon]\nrestart_min = 10\nrestart_max = 1",
            "daemon.restart_max",
            "restart_min",
        ),
        ("serial = 3\n" + GATEWAY, "serial", "array of tables"),
        (GATEWAY + "[serial]\npath = 'x'", "serial", "[[serial]]"),
        (
            GATEWAY
            + '[[serial]]\npath = "/dev/x"\nprotocol = "lora"\n[[serial.devices]]\nsensor = "a"',
            "serial[0].protocol",
            "lora",
        ),
        (GATEWAY + '[[serial]]\npath = "/dev/x"\nprotocol = "tic"', "serial[0].devices", "device"),
        (
            GATEWAY
            + '[[serial]]\npath = "/dev/x"\nprotocol = "sdi12"\n[[serial.devices]]\nsensor = "a"\naddress = "??"',
            "serial[0].devices[0].address",
            "SDI-12",
        ),
        (GATEWAY + '[ble]\nbackend = "bumble"', "ble.transport", "required"),
        (GATEWAY + '[ble]\nbackend = "bluez:usb0"', "ble.backend", "hciN"),
        (GATEWAY + '[ble]\nbackend = "zigbee"', "ble.backend", "bluez"),
        (
            GATEWAY + '[ble]\n[[ble.devices]]\nsensor = "a"\naddress = "zz"\nkind = "bthome"',
            "ble.devices[0].address",
            "Bluetooth address",
        ),
        (
            GATEWAY
            + '[ble]\n[[ble.devices]]\nsensor = "a"\naddress = "A4:C1:38:00:00:01"\nkind = "bthome"\nbind_key = "abc"',
            "ble.devices[0].bind_key",
            "",
        ),
        (GATEWAY + '[ble]\nabsent_after = "soon"', "ble.absent_after", "duration"),
    ],
)
def test_errors_name_the_field(body: str, path: str, words: str) -> None:
    errors = errors_of(body)
    assert any(e.startswith(path + ":") and words in e for e in errors), errors


def sensor_config(sensor_table: str) -> str:
    return (
        GATEWAY
        + f"""
[[serial]]
path = "/dev/ttyUSB0"
protocol = "modbus"
[[serial.devices]]
sensor = "soil-1"
address = 1
map = "soil"
[sensors.soil-1]
{sensor_table}
"""
    )


@pytest.mark.parametrize(
    ("table", "path", "words"),
    [
        ('dataset = "public"', "sensors.soil-1.dataset", 'got "public"'),
        (
            'report = { mode = "change", window = 60 }',
            "sensors.soil-1.report.window",
            'does not apply to mode = "change"',
        ),
        (
            'report = { mode = "aggregate", aggregates = ["median"] }',
            "sensors.soil-1.report.aggregates",
            '"median"',
        ),
        (
            'report = { mode = "aggregate", aggregates = [] }',
            "sensors.soil-1.report.aggregates",
            "at least one",
        ),
        (
            'report = { mode = "change", deadband = -1 }',
            "sensors.soil-1.report.deadband",
            "at least 0",
        ),
        (
            'report = { mode = "change", deadband = { moisture = "x" } }',
            "sensors.soil-1.report.deadband.moisture",
            "number",
        ),
        ('report = { mode = "sometimes" }', "sensors.soil-1.report.mode", "sometimes"),
        ('rename = { moisture = "with space" }', "sensors.soil-1.rename.moisture", "quantity name"),
        ('rename = { moisture = "x", ph = "x" }', "sensors.soil-1.rename", "two quantities"),
        ('rename = { ph = "acidity" }\nignore = ["ph"]', "sensors.soil-1.rename.ph", "ignore"),
        ("location = { lat = 43.0 }", "sensors.soil-1.location", "lat and lon"),
        ("location = { lat = 95.0, lon = 5.0 }", "sensors.soil-1.location.lat", "-90..90"),
        ('colour = "red"', "sensors.soil-1.colour", "unknown field"),
    ],
)
def test_sensor_errors_name_the_field(table: str, path: str, words: str) -> None:
    errors = errors_of(sensor_config(table))
    assert any(e.startswith(path + ":") and words in e for e in errors), errors


def test_a_sensor_id_read_by_two_devices_is_refused() -> None:
    text = (
        GATEWAY
        + """
[[serial]]
path = "/dev/ttyUSB0"
protocol = "modbus"
[[serial.devices]]
sensor = "same"
address = 1
map = "soil"
[ble]
[[ble.devices]]
sensor = "same"
address = "A4:C1:38:00:00:01"
kind = "bthome"
"""
    )
    (error,) = errors_of(text)
    assert error == 'ble.devices[0].sensor: "same" is also serial[0].devices[0]'


def test_a_port_configured_twice_is_refused() -> None:
    port = (
        '[[serial]]\npath = "/dev/ttyUSB0"\nprotocol = "nmea"\n[[serial.devices]]\nsensor = "{}"\n'
    )
    (error,) = errors_of(GATEWAY + port.format("a") + port.format("b"))
    assert error == "serial[1].path: /dev/ttyUSB0 is also serial[0]"


def test_report_strategies_are_read() -> None:
    config = parse(
        sensor_config(
            'report = { mode = "change", deadband = { moisture = 0.5, "*" = 2 }, heartbeat = "1h" }'
        )
    )
    report = config.sensor("soil-1").report
    assert report.mode == "change"
    assert report.deadband_for("moisture") == 0.5
    assert report.deadband_for("temperature") == 2
    assert report.heartbeat_s == 3600
    config = parse(
        sensor_config(
            'report = { mode = "aggregate", window = "15min", aggregates = ["max", "max", "count"] }'
        )
    )
    report = config.sensor("soil-1").report
    assert report.window_s == 900 and report.aggregates == ("max", "count")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"[gateway\nid = 1", "not valid TOML"),
        (b"\xff\xfe[gateway]", "not"),
    ],
)
def test_an_unreadable_file_is_a_config_error(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "edge.toml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert words in str(info.value)
    assert str(path) in str(info.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "absent.toml")


def test_durations_and_sizes_take_units() -> None:
    config = parse(
        GATEWAY + '[buffer]\nquota = "2 GB"\ncommit_interval = "250ms"\nmax_age = "2h"\n'
        'segment_size = "1 MiB"'
    )
    assert config.buffer.quota_bytes == 2_000_000_000
    assert config.buffer.commit_interval_s == 0.25
    assert config.buffer.max_age_s == 7200
    assert config.buffer.segment_bytes == 1 << 20
