"""Manufacturer-specific decoders, run on every telegram after the standard layers.

Each is a function of a `WmbusTelegram` that adds measurements (`extra`) and alarms when
the telegram comes from a meter it knows (by manufacturer, version and device type, and
by the records it carries); it never raises for a meter it does not know.
"""

from protocols._typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from protocols.wmbus._telegram import WmbusTelegram

    Driver = Callable[[WmbusTelegram], None]

DRIVERS: "list[Driver]" = []

__all__ = ["DRIVERS"]
