"""Signed commands to one gateway, on its cmd topic."""

from __future__ import annotations

from collections.abc import Mapping

from fleet._enrollment import Enrollments
from fleet._errors import Conflict, FleetError, NotFound
from protocols import signed, wire


class Commands(Enrollments):
    # -- commands ------------------------------------------------------------------------------

    def command(
        self,
        gateway_id: str,
        name: str,
        actor: str,
        args: Mapping[str, object] | None = None,
        ttl_s: float = 3600.0,
    ) -> int:
        """A signed command for one gateway, published on its cmd topic; returns its seq.
        `name` is one of `protocols.signed.COMMANDS` (what a gateway runs)."""
        if name not in signed.COMMANDS:
            raise FleetError(f"unknown command {name!r}: one of {', '.join(signed.COMMANDS)}")
        with self._tx() as db:
            row = db.execute(
                "SELECT cmd_seq, state FROM gateways WHERE id = ?", (gateway_id,)
            ).fetchone()
            if row is None:
                raise NotFound(f"no gateway {gateway_id!r}")
            if row[1] != "active":
                raise Conflict(f"{gateway_id} is revoked")
            seq = int(row[0]) + 1
            db.execute("UPDATE gateways SET cmd_seq = ? WHERE id = ?", (seq, gateway_id))
            now = self._now_ms()
            body = self.keys.sign_document(
                signed.CONTEXT_CMD,
                {
                    "kind": "cmd",
                    "gateway": gateway_id,
                    "seq": seq,
                    "issued_ms": now,
                    "expires_ms": now + int(ttl_s * 1000),
                    "name": name,
                    "args": dict(args or {}),
                },
            )
            message = wire.encode_envelope(wire.Envelope(wire.CMD, body))
            self._queue(db, wire.topic(gateway_id, "cmd"), message, retain=False)
            self._audit(db, actor, "cmd." + name, gateway_id, seq=seq, args=dict(args or {}))
            self._bump(db)
        return seq
