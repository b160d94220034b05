"""The numériscore: the footprint of the fleet's digital service, per gateway, for the hub
and fleet-wide, per day, with a published formula (docs/numeriscore.md).

For the pages: `request.app.state.numeriscore` is a `Numeriscore`:

    ns.days(first=None, last=None, gateway=None)  # newest first: gateways, hub, fleet, peer
    ns.formula()                                   # thresholds, hardware figures
    ns.csv(ns.days())                              # the CSV export
"""

from hub.numeriscore._api import Numeriscore, numeriscore_router
from hub.numeriscore._model import (
    HARDWARE,
    LETTERS,
    PEER,
    THRESHOLDS,
    HardwareClass,
    fleet_figures,
    gateway_figures,
    grade,
    hub_figures,
    score,
)
from hub.numeriscore._tracker import NumeriscoreSettings, NumeriscoreTracker, report

__all__ = [
    "HARDWARE",
    "LETTERS",
    "PEER",
    "THRESHOLDS",
    "HardwareClass",
    "Numeriscore",
    "NumeriscoreSettings",
    "NumeriscoreTracker",
    "fleet_figures",
    "gateway_figures",
    "grade",
    "hub_figures",
    "numeriscore_router",
    "report",
    "score",
]
