"""HTTP routes of alerts: /api/v1/alerts, /api/v1/alert-rules, /api/v1/alert-channels,
/api/v1/alert-dead-letters. Who may do what is decided by the dependencies the hub passes in
(each returns the actor's name): `read` (any signed-in role), `operate` (acknowledge and
resolve: technicians and admins), `admin` (rules, channels, dead letters)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from hub._errors import StorageError
from hub.alerts._rules import RuleError
from hub.alerts._service import AlertService, NotFound, NotOpen

Actor = Callable[..., str]
T = TypeVar("T")
RuleDoc = Annotated[dict[str, Any], Body()]


class Note(BaseModel):
    note: str = Field(default="", max_length=500)


class ChannelBody(BaseModel):
    type: str = Field(max_length=16)
    config: dict[str, Any]


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except NotFound as e:
        raise HTTPException(404, e.message) from e
    except NotOpen as e:
        raise HTTPException(409, e.message) from e
    except RuleError as e:
        raise HTTPException(422, {"reason": e.reason, "message": e.message}) from e
    except StorageError as e:
        raise HTTPException(503, str(e)) from e
    except (RuntimeError, TimeoutError) as e:
        raise HTTPException(503, str(e) or "the alert engine did not answer") from e


def alerts_router(service: AlertService, *, read: Actor, operate: Actor, admin: Actor) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    @router.get("/api/v1/alerts")
    def list_alerts(
        state: str | None = Query(None, pattern="^(open|firing|acknowledged|resolved)$"),
        rule: str | None = Query(None, max_length=64),
        subject: str | None = Query(None, max_length=200),
        limit: int = Query(100, ge=1, le=1000),
        _: str = Depends(read),
    ) -> dict[str, Any]:
        """Alerts, newest first; `state=open` for firing and acknowledged ones."""
        alerts = _call(lambda: service.alerts(state, rule=rule, subject=subject, limit=limit))
        return {
            "counts": _call(service.counts),
            "alerts": [a.as_dict() for a in alerts],
        }

    @router.get("/api/v1/alerts/{alert_id}")
    def get_alert(alert_id: str, _: str = Depends(read)) -> dict[str, Any]:
        """One alert and its history (fired, flaps, acknowledged, resolved)."""
        alert = _call(lambda: service.alert(alert_id))
        events = _call(lambda: service.events(alert_id))
        out = alert.as_dict()
        out["events"] = [
            {"ts_ms": e.ts_ms, "event": e.event, "actor": e.actor, "detail": e.detail}
            for e in events
        ]
        return out

    @router.post("/api/v1/alerts/{alert_id}/ack")
    def ack(
        alert_id: str, body: Note | None = None, actor: str = Depends(operate)
    ) -> dict[str, Any]:
        note = body.note if body is not None else ""
        return _call(lambda: service.acknowledge(alert_id, actor, note)).as_dict()

    @router.post("/api/v1/alerts/{alert_id}/resolve")
    def resolve(
        alert_id: str, body: Note | None = None, actor: str = Depends(operate)
    ) -> dict[str, Any]:
        note = body.note if body is not None else ""
        return _call(lambda: service.resolve(alert_id, actor, note)).as_dict()

    @router.get("/api/v1/alert-rules")
    def rules(_: str = Depends(read)) -> list[dict[str, Any]]:
        return [r.as_dict() for r in _call(service.rules)]

    @router.post("/api/v1/alert-rules", status_code=201)
    def create_rule(doc: RuleDoc, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.create_rule(doc, actor)).as_dict()

    @router.get("/api/v1/alert-rules/{rule_id}")
    def get_rule(rule_id: str, _: str = Depends(read)) -> dict[str, Any]:
        return _call(lambda: service.rule(rule_id)).as_dict()

    @router.put("/api/v1/alert-rules/{rule_id}")
    def update_rule(rule_id: str, doc: RuleDoc, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.update_rule(rule_id, doc, actor)).as_dict()

    @router.post("/api/v1/alert-rules/{rule_id}/enable")
    def enable(rule_id: str, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.set_enabled(rule_id, True, actor)).as_dict()

    @router.post("/api/v1/alert-rules/{rule_id}/disable")
    def disable(rule_id: str, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.set_enabled(rule_id, False, actor)).as_dict()

    @router.delete("/api/v1/alert-rules/{rule_id}")
    def delete_rule(rule_id: str, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.delete_rule(rule_id, actor)).as_dict()

    @router.get("/api/v1/alert-rules/{rule_id}/versions")
    def versions(rule_id: str, _: str = Depends(admin)) -> list[dict[str, Any]]:
        return [
            {
                "version": v.version,
                "action": v.action,
                "actor": v.actor,
                "ts_ms": v.ts_ms,
                "doc": v.doc,
            }
            for v in _call(lambda: service.rule_versions(rule_id))
        ]

    @router.get("/api/v1/alert-channels")
    def channels(_: str = Depends(admin)) -> list[dict[str, Any]]:
        return [c.public() for c in _call(service.channels)]

    @router.put("/api/v1/alert-channels/{name}")
    def save_channel(name: str, body: ChannelBody, actor: str = Depends(admin)) -> dict[str, Any]:
        return _call(lambda: service.save_channel(name, body.type, body.config, actor)).public()

    @router.delete("/api/v1/alert-channels/{name}", status_code=204)
    def delete_channel(name: str, actor: str = Depends(admin)) -> None:
        _call(lambda: service.delete_channel(name, actor))

    @router.get("/api/v1/alert-dead-letters")
    def dead_letters(
        all: bool = Query(False), limit: int = Query(100, ge=1, le=1000), _: str = Depends(admin)
    ) -> list[dict[str, Any]]:
        """Deliveries that failed every attempt (pending replay unless `all`)."""
        return [
            {
                "id": d.id,
                "channel": d.channel,
                "alert_id": d.alert_id,
                "error": d.error,
                "attempts": d.attempts,
                "ts_ms": d.ts_ms,
                "replayed_ms": d.replayed_ms,
                "replayed_by": d.replayed_by,
                "payload": d.payload,
            }
            for d in _call(lambda: service.dead_letters(not all, limit))
        ]

    @router.post("/api/v1/alert-dead-letters/{letter_id}/replay")
    def replay(letter_id: int, actor: str = Depends(admin)) -> dict[str, Any]:
        letter = _call(lambda: service.replay(letter_id, actor))
        return {"id": letter.id, "channel": letter.channel, "queued": True}

    return router


__all__ = ["alerts_router"]
