"""The gateway uplink: the buffer drained to the hub over MQTT, end-to-end acknowledged.

from edge.uplink import Uplink, UplinkConfig
await Uplink(segment_log, UplinkConfig("gw-017", "mqtt://hub:1883", state_dir)).run()
"""

from edge.uplink._close import DISCONNECT_WAIT_S, close_client, honour_cancel, session
from edge.uplink._config import BrokerUrl, UplinkConfig
from edge.uplink._errors import UplinkConfigError, UplinkError
from edge.uplink._pacing import Backoff, TokenBucket
from edge.uplink._session import SessionCounter
from edge.uplink._uplink import Uplink, UplinkStats, publish_wire_size

__all__ = [
    "DISCONNECT_WAIT_S",
    "Backoff",
    "BrokerUrl",
    "SessionCounter",
    "TokenBucket",
    "Uplink",
    "UplinkConfig",
    "UplinkConfigError",
    "UplinkError",
    "UplinkStats",
    "close_client",
    "honour_cancel",
    "publish_wire_size",
    "session",
]
