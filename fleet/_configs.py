"""Layered desired configuration: layers, effective documents, signed versions, signing keys."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Literal

from fleet import _layers, _schema
from fleet._errors import FleetError, NotFound
from fleet._registry import Gateway, Registry
from protocols import signed, wire

Scope = Literal["fleet", "group", "gateway"]


class _Snapshot:
    """The layers and the gateways' groups as one transaction sees them, and each group's
    effective document merged once: a push to a thousand gateways of one group merged,
    validated and serialised the same document a thousand times (4 queries each)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.docs = {
            (scope, name): json.loads(doc)
            for scope, name, doc in db.execute("SELECT scope, name, doc FROM layers")
        }
        self._merged: dict[tuple[str, str | None], tuple[_layers.Document, str]] = {}

    def _get(self, gateway_id: str) -> tuple[_layers.Document, str]:
        row = self.db.execute("SELECT grp FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
        group = str(row[0])
        own = ("gateway", gateway_id) in self.docs
        key = (group, gateway_id if own else None)
        if key not in self._merged:
            layers = [
                self.docs[k]
                for k in (("fleet", ""), ("group", group), ("gateway", gateway_id))
                if k in self.docs
            ]
            doc = _layers.effective(layers)
            self._merged[key] = (doc, json.dumps(doc, sort_keys=True))
        return self._merged[key]

    def effective(self, gateway_id: str) -> _layers.Document:
        """The merged document of `gateway_id` (a copy: the caller may keep it)."""
        return dict(json.loads(self._get(gateway_id)[1]))

    def effective_json(self, gateway_id: str) -> str:
        return self._get(gateway_id)[1]


class Configurations(Registry):
    # -- configuration -----------------------------------------------------------------------

    def _scope_name(self, scope: Scope, name: str | None) -> str:
        if scope == "fleet":
            return ""
        if not name:
            raise FleetError(f"a {scope} layer needs a name")
        if scope == "group":
            self.group(name)
        elif scope == "gateway":
            self.gateway(name)
        else:
            raise FleetError(f"unknown scope {scope!r}")
        return name

    def layer(self, scope: Scope, name: str | None = None) -> _layers.Document:
        key = self._scope_name(scope, name)
        with self._lock:
            row = self._db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
        return {} if row is None else dict(json.loads(row[0]))

    def set_layer(
        self, scope: Scope, name: str | None, document: Mapping[str, object], actor: str
    ) -> list[Gateway]:
        """Replace a layer; every gateway it reaches gets a new signed configuration if its
        effective document changed. The layer and each effective document pass the schema
        first (ConfigRejected names every wrong field): nothing is stored otherwise."""
        key = self._scope_name(scope, name)
        doc = dict(document)
        _schema.validate(doc, layer=True)
        with self._tx() as db:
            old = db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
            before = {} if old is None else json.loads(old[0])
            db.execute(
                "INSERT OR REPLACE INTO layers (scope, name, doc, updated_ms, updated_by)"
                " VALUES (?, ?, ?, ?, ?)",
                (scope, key, json.dumps(doc, sort_keys=True), self._now_ms(), actor),
            )
            targets = self._reached(db, scope, key)
            layers = _Snapshot(db)
            checked: set[str] = set()
            for gw in targets:  # refuse before anything is signed
                doc_json = layers.effective_json(gw)
                if doc_json not in checked:  # gateways of one group share theirs
                    _schema.validate(layers.effective(gw))
                    checked.add(doc_json)
            changes = _layers.diff(before, doc)
            self._audit(
                db,
                actor,
                "config.set",
                f"{scope}:{key}" if key else scope,
                changes=[[op, path, old_v, new_v] for op, path, old_v, new_v in changes],
            )
            built = self._rebuild(db, targets)
            self._bump(db)
        by_id = {g.id: g for g in self.gateways()}
        return [by_id[g] for g in built]

    def _reached(self, db: sqlite3.Connection, scope: str, key: str) -> list[str]:
        sql = "SELECT id FROM gateways WHERE state = 'active'"
        args: tuple[str, ...] = ()
        if scope == "group":
            sql += " AND grp = ?"
            args = (key,)
        elif scope == "gateway":
            sql += " AND id = ?"
            args = (key,)
        return [r[0] for r in db.execute(sql + " ORDER BY id", args)]

    def _effective(self, db: sqlite3.Connection, gateway_id: str) -> _layers.Document:
        row = db.execute("SELECT grp FROM gateways WHERE id = ?", (gateway_id,)).fetchone()
        layers = []
        for scope, key in (("fleet", ""), ("group", row[0]), ("gateway", gateway_id)):
            found = db.execute(
                "SELECT doc FROM layers WHERE scope = ? AND name = ?", (scope, key)
            ).fetchone()
            if found is not None:
                layers.append(json.loads(found[0]))
        return _layers.effective(layers)

    def effective(
        self, *, group: str | None = None, gateway: str | None = None
    ) -> _layers.Document:
        """The merged document of a gateway, or of a group (fleet + group), or the fleet's."""
        with self._lock:
            if gateway is not None:
                self.gateway(gateway)
                return self._effective(self._db, gateway)
            layers = [self.layer("fleet")]
            if group is not None:
                layers.append(self.layer("group", group))
            return _layers.effective(layers)

    def desired(self, gateway_id: str, version: int | None = None) -> tuple[int, _layers.Document]:
        """(version, document) the hub wants `gateway_id` to run (or of an older version)."""
        with self._lock:
            row = self._db.execute(
                "SELECT version, doc FROM desired WHERE gateway = ? AND (? IS NULL OR version = ?)"
                " ORDER BY version DESC LIMIT 1",
                (gateway_id, version, version),
            ).fetchone()
        if row is None:
            raise NotFound(f"no configuration version {version} for {gateway_id}")
        return int(row[0]), dict(json.loads(row[1]))

    def desired_message(self, gateway_id: str) -> bytes:
        """The wire message (signed) of the latest desired configuration."""
        with self._lock:
            row = self._db.execute(
                "SELECT payload FROM desired WHERE gateway = ? ORDER BY version DESC LIMIT 1",
                (gateway_id,),
            ).fetchone()
        if row is None:
            raise NotFound(f"no configuration for {gateway_id}")
        return bytes(row[0])

    def _rebuild(
        self, db: sqlite3.Connection, gateway_ids: list[str], *, force: bool = False
    ) -> dict[str, bytes]:
        """Sign a new version for each gateway whose document or trusted keys changed."""
        keys = self.keys.public_keys()
        keys_json = json.dumps(sorted(keys))
        out: dict[str, bytes] = {}
        layers = _Snapshot(db)
        for gw in gateway_ids:
            doc = layers.effective(gw)
            doc_json = layers.effective_json(gw)
            last = db.execute(
                "SELECT doc, keys, payload FROM desired WHERE gateway = ?"
                " ORDER BY version DESC LIMIT 1",
                (gw,),
            ).fetchone()
            if last is not None and last[0] == doc_json and last[1] == keys_json and not force:
                continue
            version = int(self._meta(db, "config_version", "0") or 0) + 1
            self._set_meta(db, "config_version", str(version))
            now = self._now_ms()
            body = self.keys.sign_document(
                signed.CONTEXT_CONFIG,
                {
                    "kind": "config",
                    "gateway": gw,
                    "version": version,
                    "issued_ms": now,
                    "config": doc,
                    "keys": dict(keys),
                },
            )
            message = wire.encode_envelope(wire.Envelope(wire.CONFIG, body))
            db.execute(
                "INSERT INTO desired (gateway, version, doc, keys, payload, created_ms)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (gw, version, doc_json, keys_json, message, now),
            )
            self._queue(db, wire.topic(gw, "config"), message, retain=True)
            out[gw] = message
        return out

    # -- keys ----------------------------------------------------------------------------------

    def add_key(self, actor: str) -> str:
        """A new signing key; every gateway gets a configuration that trusts it (signed by the
        current keys as well, so gateways accept it)."""
        kid = self.keys.add()
        with self._tx() as db:
            self._audit(db, actor, "key.add", kid)
            self._rebuild(db, self._reached(db, "fleet", ""))
            self._bump(db)
        return kid

    def retire_key(self, kid: str, actor: str) -> None:
        """Stop trusting `kid`; gateways get configurations signed without it."""
        self.keys.retire(kid)
        with self._tx() as db:
            self._audit(db, actor, "key.retire", kid)
            self._rebuild(db, self._reached(db, "fleet", ""))
            self._bump(db)

    def republish_all(self) -> None:
        """Queue the retained configuration of every active gateway again (a broker without
        persistence, such as the embedded one, forgets retained messages on restart)."""
        with self._tx() as db:
            for gw in self._reached(db, "fleet", ""):
                row = db.execute(
                    "SELECT payload FROM desired WHERE gateway = ? ORDER BY version DESC LIMIT 1",
                    (gw,),
                ).fetchone()
                if row is not None:
                    self._queue(db, wire.topic(gw, "config"), bytes(row[0]), retain=True)
