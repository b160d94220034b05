"""HTTP routes of alerts: /api/v1/alerts, /api/v1/alert-rules, /api/v1/alert-channels,
/api/v1/alert-dead-letters, with hub.auth's roles: reading alerts takes a signed-in role
(reader, technician, admin) and shows only the alerts that principal may see (AlertService's
visibility, docs/alerts.md), acknowledging and resolving a technician or an admin on an alert
they see (a hidden one is a 404, as a missing one), reading and managing rules, channels and
dead letters an admin. Every change is written to the hub's
audit log (GET /api/v1/audit) besides the rules' own versions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Body, Depends, HTTPException, Query, Request
from pydantic import BaseModel, Field

from hub._errors import StorageError
from hub.alerts._rules import RuleError
from hub.alerts._service import AlertService, NotFound, NotOpen
from hub.auth import Principal, audit, require_role

Reader = Annotated[Principal, Depends(require_role("admin", "technician", "reader"))]
Operator = Annotated[Principal, Depends(require_role("admin", "technician"))]
Admin = Annotated[Principal, Depends(require_role("admin"))]
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


def _who(principal: Principal) -> str:
    return principal.user or principal.role


def alerts_router(service: AlertService) -> APIRouter:
    router = APIRouter(tags=["alerts"])

    def audited(
        who: Principal, request: Request, action: str, target: str, detail: dict[str, Any]
    ) -> None:
        audit(who, action, target, detail, request)

    @router.get("/api/v1/alerts")
    def list_alerts(
        who: Reader,
        state: str | None = Query(None, pattern="^(open|firing|acknowledged|resolved)$"),
        rule: str | None = Query(None, max_length=64),
        subject: str | None = Query(None, max_length=200),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Alerts `who` may see (docs/alerts.md), newest first; `state=open` for firing and
        acknowledged ones; `counts` of those only."""
        alerts = _call(
            lambda: service.alerts(state, rule=rule, subject=subject, limit=limit, viewer=who)
        )
        counts = _call(lambda: service.counts(who))
        return {"counts": counts, "alerts": [a.as_dict() for a in alerts]}

    @router.get("/api/v1/alerts/{alert_id}")
    def get_alert(alert_id: str, who: Reader) -> dict[str, Any]:
        """One alert and its history (fired, flaps, acknowledged, resolved); 404 when hidden
        from `who`, as when missing."""
        alert = _call(lambda: service.alert(alert_id, who))
        events = _call(lambda: service.events(alert_id, who))
        out = alert.as_dict()
        out["events"] = [
            {"ts_ms": e.ts_ms, "event": e.event, "actor": e.actor, "detail": e.detail}
            for e in events
        ]
        return out

    @router.post("/api/v1/alerts/{alert_id}/ack")
    def ack(
        alert_id: str, who: Operator, request: Request, body: Note | None = None
    ) -> dict[str, Any]:
        """Acknowledge a firing alert (acknowledging twice changes nothing)."""
        note = body.note if body is not None else ""
        done = _call(lambda: service.acknowledge(alert_id, _who(who), note, who))
        audited(who, request, "alert.acknowledge", alert_id, {"note": note})
        return done.as_dict()

    @router.post("/api/v1/alerts/{alert_id}/resolve")
    def resolve(
        alert_id: str, who: Operator, request: Request, body: Note | None = None
    ) -> dict[str, Any]:
        """Resolve an open alert by hand; it fires again only once its condition cleared."""
        note = body.note if body is not None else ""
        done = _call(lambda: service.resolve(alert_id, _who(who), note, who))
        audited(who, request, "alert.resolve", alert_id, {"note": note})
        return done.as_dict()

    @router.get("/api/v1/alert-rules")
    def rules(_: Admin) -> list[dict[str, Any]]:
        return [r.as_dict() for r in _call(service.rules)]

    @router.post("/api/v1/alert-rules", status_code=201)
    def create_rule(doc: RuleDoc, who: Admin, request: Request) -> dict[str, Any]:
        """Create a rule (docs/alerts.md): version 1."""
        saved = _call(lambda: service.create_rule(doc, _who(who)))
        audited(who, request, "alert_rule.create", saved.id, {"version": saved.version})
        return saved.as_dict()

    @router.get("/api/v1/alert-rules/{rule_id}")
    def get_rule(rule_id: str, _: Admin) -> dict[str, Any]:
        return _call(lambda: service.rule(rule_id)).as_dict()

    @router.put("/api/v1/alert-rules/{rule_id}")
    def update_rule(rule_id: str, doc: RuleDoc, who: Admin, request: Request) -> dict[str, Any]:
        """Replace a rule: a new version."""
        saved = _call(lambda: service.update_rule(rule_id, doc, _who(who)))
        audited(who, request, "alert_rule.update", rule_id, {"version": saved.version})
        return saved.as_dict()

    @router.post("/api/v1/alert-rules/{rule_id}/enable")
    def enable(rule_id: str, who: Admin, request: Request) -> dict[str, Any]:
        saved = _call(lambda: service.set_enabled(rule_id, True, _who(who)))
        audited(who, request, "alert_rule.enable", rule_id, {"version": saved.version})
        return saved.as_dict()

    @router.post("/api/v1/alert-rules/{rule_id}/disable")
    def disable(rule_id: str, who: Admin, request: Request) -> dict[str, Any]:
        saved = _call(lambda: service.set_enabled(rule_id, False, _who(who)))
        audited(who, request, "alert_rule.disable", rule_id, {"version": saved.version})
        return saved.as_dict()

    @router.delete("/api/v1/alert-rules/{rule_id}")
    def delete_rule(rule_id: str, who: Admin, request: Request) -> dict[str, Any]:
        """Delete a rule; its versions stay."""
        saved = _call(lambda: service.delete_rule(rule_id, _who(who)))
        audited(who, request, "alert_rule.delete", rule_id, {"version": saved.version})
        return saved.as_dict()

    @router.get("/api/v1/alert-rules/{rule_id}/versions")
    def versions(rule_id: str, _: Admin) -> list[dict[str, Any]]:
        """Every version of a rule, with who and when."""
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
    def channels(_: Admin) -> list[dict[str, Any]]:
        """Channels, secrets hidden."""
        return [c.public() for c in _call(service.channels)]

    @router.put("/api/v1/alert-channels/{name}")
    def save_channel(name: str, body: ChannelBody, who: Admin, request: Request) -> dict[str, Any]:
        saved = _call(lambda: service.save_channel(name, body.type, body.config, _who(who)))
        audited(who, request, "alert_channel.save", name, {"type": body.type})
        return saved.public()

    @router.delete("/api/v1/alert-channels/{name}", status_code=204)
    def delete_channel(name: str, who: Admin, request: Request) -> None:
        _call(lambda: service.delete_channel(name, _who(who)))
        audited(who, request, "alert_channel.delete", name, {})

    @router.get("/api/v1/alert-dead-letters")
    def dead_letters(
        _: Admin,
        all: bool = Query(False),
        limit: int = Query(100, ge=1, le=1000),
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
    def replay(letter_id: int, who: Admin, request: Request) -> dict[str, Any]:
        """Send a dead letter again (through the retries)."""
        letter = _call(lambda: service.replay(letter_id, _who(who)))
        audited(
            who, request, "alert_dead_letter.replay", str(letter_id), {"channel": letter.channel}
        )
        return {"id": letter.id, "channel": letter.channel, "queued": True}

    return router


__all__ = ["alerts_router"]
