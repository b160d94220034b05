"""The fleet in the hub: enrollment and admin endpoints, broker access upkeep, and the MQTT side
(signed configurations and commands published, gateway reports recorded).

`FleetHub(data_dir, ...)` opens the registry (`<data>/fleet/`), makes the hub's broker
identity, signing key and admin credential on first start (the admin credential is returned
once, in `new_admin_credential`), and offers:

- `router()`: the HTTP endpoints (FastAPI), to include in the hub's app;
- `broker_access`: the embedded broker's access policy (hub.acl.FleetAccess);
- `run(address, broker)`: the supervised tasks `fleet-watch` (registry revision -> broker
  access snapshot, revoked clients disconnected, Mosquitto files rewritten and reloaded),
  `fleet-mqtt` (outbox published, reports recorded) and `fleet-rollouts` (rollouts run by
  the hub: hub._rollouts_api).

Admin endpoints take a credential of `hub.auth` (an admin's API token or session);
technicians read the fleet and command the gateways of their groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import aiomqtt
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi import Path as PathParam
from pydantic import BaseModel, Field

from fleet import (
    BrokerAccess,
    BrokerAccount,
    ConfigRejected,
    Conflict,
    Fleet,
    FleetError,
    NotFound,
    Outbound,
    PullJobs,
    SourceState,
    TlsFiles,
    TokenRefused,
    b64,
    reload_mosquitto,
    tls_files,
    unb64,
    write_mosquitto_files,
)
from fleet import diff as diff_docs
from hub._http import RateLimit
from hub._mqtt import (
    BrokerAddress,
    acknowledge,
    flow_control,
    honour_cancel,
    in_session_task,
    session,
)
from hub._rollouts_api import routes as rollout_routes
from hub._rollouts_api import run_rollouts
from hub.acl import FleetAccess, disconnect_unknown
from hub.auth import Access, AccessSettings, Principal, require_role
from hub.broker import Broker
from protocols import settings, update_job, wire
from protocols.errors import ProtocolError

log = logging.getLogger("estran.hub.fleet")

T = TypeVar("T")

# Module level: FastAPI resolves the endpoints' (string) annotations in this namespace.
Admin = Annotated[Principal, Depends(require_role("admin"))]
Staff = Annotated[Principal, Depends(require_role("admin", "technician"))]
GatewayId = Annotated[str, PathParam(max_length=64)]

POLL_S = 0.5
MQTT_TIMEOUT_S = 10.0
OUTBOX_WINDOW = 16  # outbox messages in flight at once (paho's window is 20)
REPORT_BATCH = 64  # reports recorded in one transaction at most
RECONNECT_MAX_S = 30.0


class ChallengeRequest(BaseModel):
    token: str = Field(max_length=256)


class EnrollRequest(BaseModel):
    token: str = Field(max_length=256)
    public_key: str = Field(max_length=64)
    nonce: str = Field(max_length=64)
    proof: str = Field(max_length=128)
    site: str | None = Field(default=None, max_length=128)


class TokenRequest(BaseModel):
    group: str
    ttl_s: float = Field(default=3600.0, gt=0)
    site: str | None = None


class CommandRequest(BaseModel):
    name: str = Field(max_length=64)
    args: dict[str, Any] = Field(default_factory=dict)
    ttl_s: float = Field(default=3600.0, gt=0)


class FleetHub:
    def __init__(
        self,
        data_dir: Path,
        *,
        broker_url: str | None = None,
        mqtt_port: int = 1883,
        mosquitto_dir: Path | None = None,
        mosquitto_pid: Path | None = None,
        poll_s: float = POLL_S,
        access_settings: AccessSettings | None = None,
        public_url: str = "",
        rollouts: bool = True,
    ) -> None:
        self.fleet = Fleet(data_dir)
        self.public_url = public_url  # where gateways reach this hub's HTTP API (pull mode)
        self.rollouts = rollouts  # run rollouts here (hub._rollouts_api.run_rollouts)
        self.pull = PullJobs(self.fleet)  # pull-mode update jobs and their reports
        self.broker_url = broker_url
        self.mqtt_port = mqtt_port
        self.mosquitto_dir = mosquitto_dir
        self.mosquitto_pid = mosquitto_pid
        self.poll_s = poll_s
        self.credentials = self.fleet.hub_credentials()
        self.new_admin_credential = self.fleet.ensure_admin()
        self.access = Access(self.fleet, access_settings)
        self.broker_access = FleetAccess(BrokerAccess(self.fleet.broker_accounts()))
        self.hub_key = self.fleet.keys.ensure()
        self.connected = asyncio.Event()
        self.reports = 0
        self._revision = -1
        self._accounts: list[BrokerAccount] | None = None  # as of the last refresh
        self._software: dict[str, str] = {}  # last software version recorded per gateway
        self._health_seen: dict[str, object] = {}  # last source health recorded per gateway
        self.enroll_limit = RateLimit()  # per client address, on the open enrollment endpoints
        self._wake = asyncio.Event()
        if mosquitto_dir is not None:
            self._sync_mosquitto()

    def close(self) -> None:
        self.fleet.close()

    # -- TLS (the demo CA of `estran fleet tls init`) ----------------------------------------------

    def tls(self) -> TlsFiles:
        files = tls_files(self.fleet.directory / "tls")
        if files is None:
            raise FleetError("no TLS files: run `estran fleet tls init --host NAME` first")
        return files

    def tls_listener(self, bind: str | None) -> dict[str, Any] | None:
        """The embedded broker's TLS listener on `bind` (HOST:PORT), or None."""
        if bind is None:
            return None
        files = self.tls()
        return {"bind": bind, "certfile": str(files.server_cert), "keyfile": str(files.server_key)}

    def https_options(self, enabled: bool) -> dict[str, Any]:
        """uvicorn options serving the API over TLS (empty when not `enabled`)."""
        if not enabled:
            return {}
        files = self.tls()
        log.info("HTTPS with the hub's CA (fingerprint %s)", files.ca_fingerprint)
        return {"ssl_certfile": str(files.server_cert), "ssl_keyfile": str(files.server_key)}

    # -- broker access ---------------------------------------------------------------------------

    def _sync_mosquitto(self) -> None:
        assert self.mosquitto_dir is not None
        if write_mosquitto_files(self.mosquitto_dir, self.fleet.broker_accounts()):
            log.info("mosquitto password and ACL files rewritten in %s", self.mosquitto_dir)
            if self.mosquitto_pid is not None:
                try:
                    pid = reload_mosquitto(self.mosquitto_pid)
                except (OSError, ValueError) as e:
                    log.error("mosquitto reload failed (%s): %s", self.mosquitto_pid, e)
                else:
                    log.info("mosquitto %d reloaded", pid)

    async def refresh(self, broker: Broker | None = None) -> bool:
        """Reload what derives from the registry if its revision moved; True if it did."""
        revision = await asyncio.to_thread(self.fleet.revision)
        if revision == self._revision:
            return False
        self._revision = revision
        accounts = await asyncio.to_thread(self.fleet.broker_accounts)
        if accounts != self._accounts:  # most changes (reports, configurations) leave them
            self._accounts = accounts
            self.broker_access.access = BrokerAccess(accounts)
            if broker is not None:
                await disconnect_unknown(broker, self.broker_access.access)
            if self.mosquitto_dir is not None:
                await asyncio.to_thread(self._sync_mosquitto)
        self._wake.set()
        return True

    # -- tasks -------------------------------------------------------------------------------------

    async def run(self, address: BrokerAddress, broker: Broker | None = None) -> None:
        """Run until cancelled: `fleet-watch` and `fleet-mqtt`."""
        await asyncio.to_thread(self.fleet.republish_all)  # a broker may have lost them
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch(broker), name="fleet-watch")
            tg.create_task(self._mqtt(address), name="fleet-mqtt")
            if self.rollouts:
                tg.create_task(
                    run_rollouts(self.fleet, self.public_url, self.poll_s), name="fleet-rollouts"
                )

    async def _watch(self, broker: Broker | None) -> None:
        while True:
            try:
                await self.refresh(broker)
            except (FleetError, OSError) as e:  # a locked or busy database: next round
                log.warning("fleet watch: %s", e)
            await asyncio.sleep(self.poll_s)

    async def _mqtt(self, address: BrokerAddress) -> None:
        delay = 0.5
        while True:
            try:  # its own task: what a failed session leaves on it dies with it (hub._mqtt)
                await in_session_task(self._mqtt_session(address), "fleet-mqtt-session")
            except* aiomqtt.MqttError as eg:
                if self.connected.is_set():  # it was subscribed: the backoff starts again
                    delay = 0.5
                self.connected.clear()
                task = asyncio.current_task()
                if task is not None and task.cancelling():  # the disconnect of a cancel failed
                    raise asyncio.CancelledError from eg
                log.warning("fleet MQTT: %s; again in %.1f s", eg.exceptions[0], delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)

    async def _mqtt_session(self, address: BrokerAddress) -> None:
        """One MQTT session of the fleet link (until the connection is lost)."""
        user, password = self.credentials
        client = aiomqtt.Client(
            address.host,
            address.port,
            identifier="estran-hub-fleet",
            username=user,
            password=password,
            protocol=aiomqtt.ProtocolVersion.V311,
            timeout=MQTT_TIMEOUT_S,
        )
        flow_control(client)  # a burst of reports waits at the broker, none discarded
        async with session(client):
            await client.subscribe(wire.subscription("report"), qos=1)
            await client.subscribe(wire.subscription("state"), qos=1)  # software
            honour_cancel()
            self.connected.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._outbox(client), name="fleet-outbox")
                tg.create_task(self._reports(client), name="fleet-reports")

    async def _outbox(self, client: aiomqtt.Client) -> None:
        while True:
            while batch := await asyncio.to_thread(self.fleet.pending):
                # A round in flight together, then marked in one transaction: one at a time
                # (a broker round trip and a commit each), a push to 1,000 gateways took
                # half a minute. The broker keeps the order of one client's messages.
                window = asyncio.Semaphore(OUTBOX_WINDOW)
                await asyncio.gather(*(self._publish(client, m, window) for m in batch))
                honour_cancel()
                await asyncio.to_thread(self.fleet.mark_published, *(m.id for m in batch))
                for m in batch:
                    log.info("published %s (%d bytes)", m.topic, len(m.payload))
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll_s):  # not wait_for: it can eat a cancel
                    await self._wake.wait()

    @staticmethod
    async def _publish(client: aiomqtt.Client, m: Outbound, window: asyncio.Semaphore) -> None:
        async with window:
            await client.publish(m.topic, m.payload, qos=1, retain=m.retain, timeout=MQTT_TIMEOUT_S)

    async def _health(self, gateway_id: str, state: wire.State) -> None:
        """Keep what the state says of the sources and of a restart pending in the registry,
        written only when it changes (not on every periodic state)."""
        if state.sources is None and state.restart_pending is None:
            return
        sources = (
            None
            if state.sources is None
            else tuple(SourceState(s.name, s.status, s.detail) for s in state.sources)
        )
        pending = None if state.restart_pending is None else tuple(state.restart_pending)
        key = (sources, pending)
        if self._health_seen.get(gateway_id) != key:
            await asyncio.to_thread(self.fleet.set_health, gateway_id, sources, pending)
            self._health_seen[gateway_id] = key

    async def _reports(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            # What the broker has already sent goes along (its window: 20 on Mosquitto):
            # the reports of a push, recorded in one transaction instead of one each.
            batch = [message]
            while len(client.messages) and len(batch) < REPORT_BATCH:
                batch.append(await anext(client.messages))
            try:
                await self._record(batch)
            finally:  # flow control: the broker holds the next ones until then
                for m in batch:
                    acknowledge(client, m)

    async def _record(self, batch: list[aiomqtt.Message]) -> None:
        reports: list[tuple[str, object]] = []
        for message in batch:
            try:
                gateway_id, kind = wire.parse_topic(str(message.topic))
                payload = message.payload
                if not isinstance(payload, bytes | bytearray) or not payload:
                    continue
                if kind == "state":
                    state = wire.decode_state(bytes(payload))
                    software = state.software
                    if software and self._software.get(gateway_id) != software:
                        await asyncio.to_thread(self.fleet.set_software, gateway_id, software)
                        self._software[gateway_id] = software
                    await self._health(gateway_id, state)
                    continue
                if kind != "report":
                    continue
                doc = wire.decode_envelope(bytes(payload), wire.REPORT).value()
                if isinstance(doc, dict) and doc.get("kind") == update_job.KIND:
                    await asyncio.to_thread(self.pull.record, gateway_id, doc)
                    self.reports += 1
                else:
                    reports.append((gateway_id, doc))
            except (ProtocolError, FleetError) as e:
                log.warning("report on %s dropped: %s", message.topic, e)
        if reports:
            try:
                refused = await asyncio.to_thread(self.fleet.record_reports, reports)
            except FleetError as e:  # the registry itself failed (locked, full disk)
                log.warning("%d reports dropped: %s", len(reports), e)
                return
            self.reports += len(reports) - len(refused)
            for gateway_id, error in refused:
                log.warning("report of %s dropped: %s", gateway_id, error)

    # -- HTTP ---------------------------------------------------------------------------------------

    def router(self) -> APIRouter:
        fleet = self.fleet
        router = APIRouter()

        access = self.access

        def acting(request: Request, who: Principal, fn: Callable[[str], T]) -> T:
            with fleet.origin(access.address(request)):
                return call(lambda: fn(who.user or "anonymous"))

        def call(fn: Callable[[], T]) -> T:
            try:
                return fn()
            except TokenRefused as e:
                raise HTTPException(403, str(e)[:300]) from e
            except NotFound as e:
                raise HTTPException(404, str(e)[:300]) from e
            except Conflict as e:
                raise HTTPException(409, str(e)[:300]) from e
            except ConfigRejected as e:
                raise HTTPException(
                    422, {"message": str(e), "issues": [str(i) for i in e.issues]}
                ) from e
            except FleetError as e:
                raise HTTPException(400, str(e)[:300]) from e

        @router.get("/api/v1/fleet/identity")
        def identity() -> dict[str, object]:
            """The hub's signing keys: the technician compares the fingerprint."""
            return {"fingerprint": self.hub_key, "keys": sorted(fleet.keys.public_keys())}

        def limited(request: Request) -> None:
            client = access.address(request)
            if not self.enroll_limit.allow(client):
                raise self.enroll_limit.too_many(client, "enrollment attempts")

        @router.post("/api/v1/enroll/challenge")
        def challenge(body: ChallengeRequest, request: Request) -> dict[str, str]:
            limited(request)
            return {"nonce": call(lambda: fleet.challenge(body.token))}

        @router.post("/api/v1/enroll")
        def enroll(body: EnrollRequest, request: Request) -> dict[str, str]:
            limited(request)
            try:
                public_key, proof = unb64(body.public_key), unb64(body.proof)
            except ValueError as e:
                raise HTTPException(422, "public_key and proof are base64") from e
            broker = self.broker_url or f"mqtt://{request.url.hostname}:{self.mqtt_port}"
            result = call(
                lambda: fleet.enroll(
                    body.token, public_key, body.nonce, proof, broker, site=body.site
                )
            )
            # its broker account now, not at the next watch round: it connects right away
            # (that one account: reading them all made enrollment slow down as the fleet
            # grew, 4.7 a second at first, 1 a second at 4,300 gateways)
            account = fleet.broker_account(result.gateway_id)
            if account is not None:
                known = self.broker_access.access.accounts
                self.broker_access.access = BrokerAccess([*known.values(), account])
            self._wake.set()
            log.info("gateway %s enrolled", result.gateway_id)
            return {
                "gateway_id": result.gateway_id,
                "answer": b64(result.answer),
                "config": b64(result.config),
            }

        @router.get("/api/v1/fleet/gateways")
        def gateways(_: Staff) -> list[dict[str, object]]:
            return [g.as_dict() for g in fleet.gateways()]

        @router.get("/api/v1/fleet/gateways/{gateway_id}/config")
        def gateway_config(gateway_id: GatewayId, _: Staff) -> dict[str, object]:
            """Desired and applied documents of one gateway, and what differs."""
            g = call(lambda: fleet.gateway(gateway_id))
            version, desired = call(lambda: fleet.desired(gateway_id))
            applied: dict[str, object] | None = None
            if g.applied_version:
                with contextlib.suppress(NotFound):
                    applied = fleet.desired(gateway_id, g.applied_version)[1]
            return {
                "gateway": gateway_id,
                "desired_version": version,
                "desired": desired,
                "applied_version": g.applied_version,
                "applied": applied,
                "drift": g.drift,
                "changes": [
                    {"op": op, "path": path, "applied": old, "desired": new}
                    for op, path, old, new in diff_docs(applied or {}, desired)
                ],
            }

        @router.get("/api/v1/fleet/groups")
        def groups(_: Staff) -> list[dict[str, object]]:
            return [
                {"name": g.name, "description": g.description, "gateways": g.gateways}
                for g in fleet.groups()
            ]

        @router.post("/api/v1/fleet/tokens")
        def token(body: TokenRequest, request: Request, who: Admin) -> dict[str, object]:
            issued = acting(
                request,
                who,
                lambda actor: fleet.create_token(body.group, body.ttl_s, actor, body.site),
            )
            return {
                "token": issued.token,
                "id": issued.info.id,
                "group": issued.info.group,
                "expires_ms": issued.info.expires_ms,
            }

        @router.post("/api/v1/fleet/gateways/{gateway_id}/revoke")
        def revoke(gateway_id: GatewayId, request: Request, who: Admin) -> dict[str, str]:
            acting(request, who, lambda actor: fleet.revoke(gateway_id, actor))
            return {"revoked": gateway_id}

        @router.post("/api/v1/fleet/gateways/{gateway_id}/commands")
        def command(
            gateway_id: GatewayId, body: CommandRequest, request: Request, who: Staff
        ) -> dict[str, object]:
            """A signed command; a technician commands the gateways of their groups only."""
            g = call(lambda: fleet.gateway(gateway_id))
            if not who.can_command(g.group):
                raise HTTPException(403, f"{who.user} does not command group {g.group}")
            seq = acting(
                request,
                who,
                lambda actor: fleet.command(gateway_id, body.name, actor, body.args, body.ttl_s),
            )
            return {"gateway": gateway_id, "seq": seq}

        @router.get("/api/v1/fleet/config/schema")
        def config_schema(
            target: Literal["hub", "gateway"] = "hub",
        ) -> dict[str, object]:
            """The JSON Schema of a desired configuration (`target=gateway`: of the gateway's
            own file), generated from protocols.settings, the schema the hub validates with.
            Public: it holds no data, and editors and scripts fetch it before they log in."""
            return settings.json_schema(hub=target == "hub")

        @router.put("/api/v1/fleet/config/{scope}")
        def set_config(
            scope: Literal["fleet", "group", "gateway"],
            document: dict[str, Any],
            request: Request,
            who: Admin,
            name: Annotated[str | None, Query(max_length=64)] = None,
        ) -> dict[str, object]:
            changed = acting(
                request, who, lambda actor: fleet.set_layer(scope, name, document, actor)
            )
            return {"changed": [g.as_dict() for g in changed]}

        @router.get("/api/v1/fleet/audit")
        def audit(
            _: Admin, limit: Annotated[int, Query(ge=1, le=10_000)] = 100
        ) -> list[dict[str, object]]:
            """The audit log as the first release gave it (GET /api/v1/audit pages it)."""
            return [
                {
                    "ts_ms": e.ts_ms,
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    **e.detail,
                }
                for e in fleet.audit(limit)
            ]

        rollout_routes(router, fleet, call, acting)
        return router


__all__ = ["FleetHub"]
