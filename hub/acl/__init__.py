"""Broker access control for the hub: amqtt plugins (embedded broker) and the Mosquitto
files' upkeep, both from the fleet registry."""

from hub.acl._amqtt import (
    BrokerAccessHolder,
    FleetAuthPlugin,
    FleetTopicPlugin,
    disconnect_unknown,
    plugins,
)

__all__ = [
    "BrokerAccessHolder",
    "FleetAuthPlugin",
    "FleetTopicPlugin",
    "disconnect_unknown",
    "plugins",
]
