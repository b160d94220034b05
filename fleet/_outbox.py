"""The outbox: messages the hub must publish (signed configurations, commands, jobs), kept in
the registry's transaction that made them and marked once the broker has them."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from fleet._store import Store


@dataclass(frozen=True, slots=True)
class Outbound:
    """A message the hub must publish; `mark_published(id)` once the broker has it."""

    id: int
    topic: str
    payload: bytes
    retain: bool


class Outbox(Store):
    # -- outbox ------------------------------------------------------------------------------

    def _queue(self, db: sqlite3.Connection, topic: str, payload: bytes, *, retain: bool) -> None:
        if retain:  # a newer retained message makes the older one moot
            db.execute("DELETE FROM outbox WHERE topic = ? AND published_ms IS NULL", (topic,))
        db.execute(
            "INSERT INTO outbox (topic, payload, retain, created_ms) VALUES (?, ?, ?, ?)",
            (topic, payload, int(retain), self._now_ms()),
        )

    def pending(self, limit: int = 256) -> list[Outbound]:
        """Messages to publish, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM outbox WHERE published_ms IS NULL"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [Outbound(r[0], r[1], bytes(r[2]), bool(r[3])) for r in rows]

    def mark_published(self, *message_ids: int) -> None:
        """The messages the broker took (one transaction for a whole round)."""
        with self._tx() as db:
            now = self._now_ms()
            db.executemany(
                "UPDATE outbox SET published_ms = ? WHERE id = ?", [(now, i) for i in message_ids]
            )
            db.execute(  # keep a day of history
                "DELETE FROM outbox WHERE published_ms < ?", (self._now_ms() - 86_400_000,)
            )
