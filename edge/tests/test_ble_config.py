"""BLE configuration (errors name the field) and the advertisement decoder's memory
(de-duplication, replay, errors once per payload), on payloads built with the codecs."""

import pytest

from edge.sources.ble import (
    AdvertisementDecoder,
    BleConfigError,
    BleDeviceConfig,
    BleOptions,
    backend_from_table,
    device_configs,
)
from edge.sources.ble._decode import BTHOME_UUID, MIBEACON_UUID
from protocols import bthome, miflora

MAC = "F0:E1:D2:00:02:01"
KEY = bytes(range(16))


def test_device_config_normalizes_and_validates() -> None:
    config = BleDeviceConfig("f0-e1-d2-00-02-01", "bthome", "soil", quantities={"moisture": "vwc"})
    assert config.address == MAC
    assert config.quantity("moisture") == "vwc"
    assert config.quantity("temperature") is None  # only listed measurements are kept
    assert BleDeviceConfig(MAC, "bthome", "soil").quantity("temperature") == "temperature"
    with pytest.raises(TypeError):
        config.quantities["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ({"kind": "bthome", "sensor": "s"}, "ble.devices[3].address", "required"),
        (
            {"address": "nope", "kind": "bthome", "sensor": "s"},
            "ble.devices[3].address",
            "not a Bluetooth",
        ),
        ({"address": MAC, "kind": "ruuvi", "sensor": "s"}, "ble.devices[3].kind", "one of"),
        ({"address": MAC, "kind": "bthome", "sensor": ""}, "ble.devices[3].sensor", "letters"),
        (
            {"address": MAC, "kind": "bthome", "sensor": "s", "bind_key": "abcd"},
            "ble.devices[3].bind_key",
            "16 bytes",
        ),
        (
            {"address": MAC, "kind": "miflora", "sensor": "s", "bind_key": KEY.hex()},
            "ble.devices[3].bind_key",
            "only BTHome",
        ),
        (
            {"address": MAC, "kind": "bthome", "sensor": "s", "poll_interval": 60},
            "ble.devices[3].poll_interval",
            "only Mi Flora",
        ),
        (
            {"address": MAC, "kind": "miflora", "sensor": "s", "poll_interval": 0},
            "ble.devices[3].poll_interval",
            "greater than 0",
        ),
        (
            {"address": MAC, "kind": "miflora", "sensor": "s", "poll_interval": "1h"},
            "ble.devices[3].poll_interval",
            "must be a number",
        ),
        (
            {"address": MAC, "kind": "bthome", "sensor": "s", "quantities": {"a": 1}},
            "ble.devices[3].quantities.a",
            "must be a string",
        ),
        (
            {"address": MAC, "kind": "bthome", "sensor": "s", "pin": "1234"},
            "ble.devices[3].pin",
            "unknown",
        ),
    ],
)
def test_device_config_errors_name_the_field(
    entry: dict[str, object], field: str, message: str
) -> None:
    with pytest.raises(BleConfigError) as caught:
        BleDeviceConfig.from_mapping(entry, "ble.devices[3]")
    assert caught.value.field == field
    assert message in caught.value.message


def test_device_configs_from_file_entries() -> None:
    configs = device_configs(
        [
            {"address": MAC, "kind": "bthome", "sensor": "soil", "bind_key": KEY.hex()},
            {
                "address": "C4:7C:8D:6A:04:01",
                "kind": "miflora",
                "sensor": "f",
                "poll_interval": 600,
            },
        ]
    )
    assert configs[0].bind_key == KEY
    assert configs[1].poll_interval == 600.0


def test_options_refuse_nonsense() -> None:
    """The schema checks the options (the hub with it): the loader names them."""
    from protocols import settings

    issues = settings.check({"ble": {"poll_timeout": 0, "poll_attempts": 0}}, settings.HUB)
    assert [i.path for i in issues] == ["ble.poll_timeout", "ble.poll_attempts"]
    assert BleOptions.from_values(settings.defaults("ble")) == BleOptions()


def test_backend_from_table_both_spellings() -> None:
    assert str(backend_from_table({})) == "bluez"
    assert str(backend_from_table({"backend": "bleak", "adapter": "hci1"})) == "bluez:hci1"
    assert str(backend_from_table({"backend": "bumble", "transport": "usb:0"})) == "bumble:usb:0"
    assert str(backend_from_table({"backend": "bumble:tcp-client:h:1"})) == "bumble:tcp-client:h:1"
    with pytest.raises(BleConfigError, match=r"ble\.transport"):
        backend_from_table({"backend": "bumble"})


def soil_payload(packet_id: int, moisture: float) -> bytes:
    return bthome.encode([(0x00, packet_id), (0x02, 12.5), (0x14, moisture)])


def test_decoder_drops_repeats_of_one_measurement() -> None:
    decoder = AdvertisementDecoder()
    first = decoder.decode(MAC, {BTHOME_UUID: soil_payload(7, 30.5)})
    repeat = decoder.decode(MAC, {BTHOME_UUID: soil_payload(7, 30.5)})
    following = decoder.decode(MAC, {BTHOME_UUID: soil_payload(8, 30.75)})
    assert first is not None and repeat is not None and following is not None
    assert not first.duplicate and repeat.duplicate and not following.duplicate
    assert [(m.name, m.value) for m in following.measurements] == [
        ("temperature", 12.5),
        ("moisture", 30.75),
    ]
    assert decoder.decode(MAC, {"0000180f-0000-1000-8000-00805f9b34fb": b"\x50"}) is None


def test_decoder_encrypted_replay_and_wrong_key_reported_once() -> None:
    good = AdvertisementDecoder({MAC: KEY})
    bad = AdvertisementDecoder({MAC: bytes(16)})

    def sealed(counter: int) -> dict[str, bytes]:
        return {BTHOME_UUID: bthome.encode([(0x14, 40.0)], key=KEY, mac=MAC, counter=counter)}

    decoded = good.decode(MAC, sealed(10))
    assert decoded is not None and decoded.error is None and decoded.encrypted
    assert decoded.sequence == 10
    replay = good.decode(MAC, sealed(9))
    assert replay is not None and replay.error is not None and replay.error.reason == "replay"
    wrong = bad.decode(MAC, sealed(10))
    again = bad.decode(MAC, sealed(10))  # the same advertisement repeated
    assert wrong is not None and wrong.error is not None and wrong.error.reason == "decryption"
    assert again is not None and again.error is None and again.duplicate
    # a plaintext payload from a device that has a key: a downgrade, refused
    plain = good.decode(MAC, {BTHOME_UUID: soil_payload(1, 20.0)})
    assert plain is not None and plain.error is not None and plain.error.reason == "decryption"


def test_decoder_mibeacon_frame_counter_and_mac_check() -> None:
    decoder = AdvertisementDecoder()
    payload = miflora.encode_mibeacon([(0x1008, 33)], MAC, frame_counter=5)
    first = decoder.decode(MAC, {MIBEACON_UUID: payload})
    repeat = decoder.decode(MAC, {MIBEACON_UUID: payload})
    assert first is not None and [m.value for m in first.measurements] == [33]
    assert repeat is not None and repeat.duplicate
    other = decoder.decode("F0:E1:D2:00:02:02", {MIBEACON_UUID: payload})
    assert other is not None and other.error is not None and other.error.reason == "malformed"


def test_decoder_memory_is_bounded() -> None:
    decoder = AdvertisementDecoder(max_devices=4)
    for i in range(10):
        decoder.decode(f"F0:E1:D2:00:00:{i:02X}", {BTHOME_UUID: soil_payload(1, 10.0)})
    assert len(decoder._memory) == 4
