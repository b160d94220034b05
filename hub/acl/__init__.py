"""Broker access control for the hub: the embedded broker's policy (and the Mosquitto
files' upkeep, in hub.fleet_api), both from the fleet registry."""

from hub.acl._access import FleetAccess, disconnect_unknown

__all__ = ["FleetAccess", "disconnect_unknown"]
