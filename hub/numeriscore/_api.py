"""GET /api/v1/numeriscore (JSON) and /api/v1/numeriscore.csv: the day books with their
figures, grades and scores, the formula and the peer's line. Public: the territory publishes
the footprint of its digital services."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from hub._errors import StorageError
from hub.numeriscore import _model
from hub.numeriscore._tracker import CSV_COLUMNS, NumeriscoreSettings, csv_rows, report
from hub.storage import Storage

MAX_DAYS = 3660


@dataclass
class Numeriscore:
    """The numériscore for the pages: `request.app.state.numeriscore`."""

    storage: Storage
    settings: NumeriscoreSettings

    def days(
        self, first: date | None = None, last: date | None = None, gateway: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest day first: {"day", "gateways": [...], "hub", "fleet", "peer"}."""
        return report(self.storage, self.settings, first=first, last=last, gateway=gateway)

    def formula(self) -> dict[str, Any]:
        return {
            "thresholds": {k: list(v) for k, v in _model.THRESHOLDS.items()},
            "letters": list(_model.LETTERS),
            "gateway_graded": list(_model.GATEWAY_GRADED),
            "hub_graded": list(_model.HUB_GRADED),
            "hardware": {
                "gateways": vars_of(_model.HARDWARE[self.settings.gateway_hardware]),
                "hub": vars_of(_model.HARDWARE[self.settings.hub_hardware]),
            },
            "doc": "docs/numeriscore.md",
        }

    def csv(self, days: list[dict[str, Any]]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows(csv_rows(days))
        return out.getvalue()


def vars_of(hw: _model.HardwareClass) -> dict[str, Any]:
    return {"name": hw.name, "idle_w": hw.idle_w, "core_w": hw.core_w, "source": hw.source}


def _date(value: str | None, name: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise HTTPException(422, f"{name}: expected a date YYYY-MM-DD") from None


def numeriscore_router(service: Numeriscore) -> APIRouter:
    router = APIRouter(tags=["numeriscore"])

    def days(first: str | None, last: str | None, gateway: str | None) -> list[dict[str, Any]]:
        a, b = _date(first, "from"), _date(last, "to")
        if a is not None and b is not None and (b - a).days > MAX_DAYS:
            raise HTTPException(422, f"at most {MAX_DAYS} days")
        try:
            return service.days(a, b, gateway)
        except StorageError as e:
            raise HTTPException(503, str(e)) from e

    @router.get("/api/v1/numeriscore")
    def get_json(
        from_: str | None = Query(None, alias="from", max_length=10),
        to: str | None = Query(None, max_length=10),
        gateway: str | None = Query(None, max_length=128),
    ) -> dict[str, Any]:
        """Per day: each gateway, the hub, the fleet and the peer, with grades and scores."""
        return {"formula": service.formula(), "days": days(from_, to, gateway)}

    @router.get("/api/v1/numeriscore.csv")
    def get_csv(
        from_: str | None = Query(None, alias="from", max_length=10),
        to: str | None = Query(None, max_length=10),
        gateway: str | None = Query(None, max_length=128),
    ) -> Response:
        """One row per day and service (gateway:ID, hub, fleet, peer)."""
        text = service.csv(days(from_, to, gateway))
        return Response(
            text,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="numeriscore.csv"'},
        )

    return router


__all__ = ["Numeriscore", "numeriscore_router"]
