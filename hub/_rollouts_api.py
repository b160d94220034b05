"""The hub's HTTP API for updates (docs/updates.md): releases served to gateways, rollouts
for admins, the Ansible inventory, and the worker that runs rollouts in the hub.

Open (no credential: integrity comes from the signed manifest and its checksums):
    GET  /api/v1/releases/{version}/manifest        the signed manifest (application/cbor)
    GET  /api/v1/releases/{version}/files/{path}    one file of the bundle
Staff (admin, technician):
    GET  /api/v1/fleet/releases, /api/v1/fleet/rollouts, /api/v1/fleet/rollouts/{id}
Admin:
    POST /api/v1/fleet/releases                     upload a release bundle (checked, signed)
    POST /api/v1/fleet/rollouts                     start one (the hub's worker runs it)
    POST /api/v1/fleet/rollouts/{id}/{pause|resume|cancel}
    GET  /api/v1/fleet/inventory                    Ansible's JSON inventory
    PUT  /api/v1/fleet/hostvars/{fleet|group|gateway}?name=N
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from fleet import Fleet, FleetError
from fleet._executor import Executor, Mode
from fleet._releases import BundleRejected
from fleet._rollout_run import RolloutRunner, default_executors, runner_name
from fleet._rollouts import Rollout
from hub.auth import Principal, require_role

log = logging.getLogger("estran.hub.rollouts")

RELEASES_PATH = "/api/v1/fleet/releases"
# a bundle's largest upload: the wheel, the playbooks and a wheelhouse of the gateways'
# dependency wheels (tens of MiB); the hub's body limit for this path says the same
# (hub._http.RELEASE_MAX_BODY), this one bounds what the endpoint writes to disk
MAX_UPLOAD = 512 * 1024 * 1024

T = TypeVar("T")
Admin = Annotated[Principal, Depends(require_role("admin"))]
Staff = Annotated[Principal, Depends(require_role("admin", "technician"))]
Version = Annotated[str, PathParam(max_length=64, pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]*$")]
# A rollout id is a SQLite/PostgreSQL bigint: anything beyond is a 422, not a 500 from the driver.
RolloutId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]


class RolloutRequest(BaseModel):
    release: str = Field(max_length=64)
    target: str = Field(default="all", max_length=2000)
    rigs: str | None = Field(default=None, max_length=2000)
    canary: str = Field(default="10%", max_length=16)
    max_failures: str = Field(default="0", max_length=16)
    mode: Literal["push", "pull"] = "push"
    batch: int = Field(default=10, ge=1, le=200)
    retries: int = Field(default=3, ge=0, le=100)
    retry_s: float = Field(default=60.0, ge=0, le=86400)


def routes(
    router: APIRouter,
    fleet: Fleet,
    call: Callable[[Callable[[], Any]], Any],
    acting: Callable[[Request, Principal, Callable[[str], Any]], Any],
) -> None:
    """Add the endpoints to `router`; `call`/`acting` map fleet errors to HTTP answers."""

    @router.get("/api/v1/releases/{version}/manifest")
    def release_manifest(version: Version) -> Response:
        body = call(lambda: fleet.release_manifest(version))
        return Response(body, media_type="application/cbor")

    @router.get("/api/v1/releases/{version}/files/{name:path}")
    def release_file(version: Version, name: Annotated[str, PathParam(max_length=255)]) -> Response:
        path = call(lambda: fleet.release_file(version, name))
        return FileResponse(path, media_type="application/octet-stream")

    @router.get("/api/v1/fleet/releases")
    def releases(_: Staff) -> list[dict[str, object]]:
        return [r.as_dict() for r in call(fleet.releases)]

    @router.post(RELEASES_PATH, status_code=201)
    async def upload_release(request: Request, who: Admin) -> dict[str, object]:
        """The body is a release bundle (`estran fleet release build`), streamed to a file in
        the hub's data directory, then checked and signed as `release add` does: 201 and the
        release; 413 over MAX_UPLOAD; 422 `{"reason", "message"}` for a bundle refused (a
        file missing, extra, altered, oddly named...); 409 another bundle of a version held."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_UPLOAD:
            raise HTTPException(413, f"a release bundle is at most {MAX_UPLOAD} bytes")
        fd, name = tempfile.mkstemp(prefix=".upload-", suffix=".tar", dir=fleet.directory)
        try:
            received = 0
            with os.fdopen(fd, "wb") as out:
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > MAX_UPLOAD:
                        raise HTTPException(413, f"a release bundle is at most {MAX_UPLOAD} bytes")
                    await asyncio.to_thread(out.write, chunk)
            if received == 0:
                raise HTTPException(422, {"reason": "not_a_bundle", "message": "empty body"})
            bundle = Path(name)

            def add(actor: str) -> dict[str, object]:
                try:
                    return dict(fleet.add_release(bundle, actor).as_dict())
                except BundleRejected as e:
                    raise HTTPException(
                        422, {"reason": e.reason, "message": str(e).replace(bundle.name, "bundle")}
                    ) from e

            return await asyncio.to_thread(acting, request, who, add)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(name)

    @router.get("/api/v1/fleet/rollouts")
    def rollouts(
        _: Staff, limit: Annotated[int, Query(ge=1, le=1000)] = 20
    ) -> list[dict[str, object]]:
        return [r.as_dict() for r in call(lambda: fleet.rollouts(limit))]

    @router.get("/api/v1/fleet/rollouts/{rollout_id}")
    def rollout(rollout_id: RolloutId, _: Staff) -> dict[str, object]:
        return dict(call(lambda: fleet.rollout(rollout_id)).as_dict())

    @router.post("/api/v1/fleet/rollouts", status_code=201)
    def start(body: RolloutRequest, request: Request, who: Admin) -> dict[str, object]:
        r = acting(
            request,
            who,
            lambda actor: fleet.create_rollout(
                body.release, body.target, actor, rigs=body.rigs, canary=body.canary,
                mode=body.mode, max_failures=body.max_failures, batch=body.batch,
                retries=body.retries, retry_s=body.retry_s,
            ),
        )  # fmt: skip
        return dict(r.as_dict())

    @router.post("/api/v1/fleet/rollouts/{rollout_id}/{action}")
    def control(
        rollout_id: RolloutId,
        action: Literal["pause", "resume", "cancel"],
        request: Request,
        who: Admin,
    ) -> dict[str, object]:
        method = getattr(fleet, f"{action}_rollout")
        r = acting(request, who, lambda actor: method(rollout_id, actor))
        return dict(r.as_dict())

    @router.get("/api/v1/fleet/inventory")
    def inventory(_: Admin) -> dict[str, object]:
        return dict(call(fleet.inventory))

    @router.put("/api/v1/fleet/hostvars/{scope}")
    def hostvars(
        scope: Literal["fleet", "group", "gateway"],
        variables: dict[str, Any],
        request: Request,
        who: Admin,
        name: Annotated[str | None, Query(max_length=64)] = None,
        replace: bool = False,
    ) -> dict[str, object]:
        return dict(
            acting(
                request,
                who,
                lambda actor: fleet.set_hostvars(scope, name, variables, actor, replace=replace),
            )
        )


STOP_GRACE_S = 10.0  # how long the hub's stop waits for the rollout batch under way


async def run_rollouts(
    fleet: Fleet,
    hub_url: str,
    poll_s: float,
    *,
    executors: dict[Mode, Executor] | None = None,
    stop_grace_s: float = STOP_GRACE_S,
) -> None:
    """The hub's rollout worker: runs each rollout nobody runs (started over the API, or
    left by a runner that stopped), one at a time, until cancelled.

    Cancelled (the hub stops) while a batch runs: the push run under way is ended
    (ansible-playbook killed), its gateways left `running` and the rollout's lease released,
    and the worker waits at most `stop_grace_s` for that; the rollout is taken over at the
    next start (its gateways run again: update.yml is idempotent and gates again a gateway
    switched but not gated). The runner works in a daemon thread of its own, not in the
    loop's executor, so that nothing waits for it beyond the grace."""
    shutdown = threading.Event()
    runner = RolloutRunner(
        fleet,
        executors if executors is not None else default_executors(fleet, abort=shutdown),
        hub_url=hub_url,
        name=runner_name("hub"),
        shutdown=shutdown,
    )
    loop = asyncio.get_running_loop()
    try:
        while True:
            finished: asyncio.Future[Rollout | None] = loop.create_future()

            def work(done: asyncio.Future[Rollout | None] = finished) -> None:
                try:
                    value: Rollout | BaseException | None = runner.run_next()
                except BaseException as e:  # handed to the loop, raised there
                    value = e
                with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits
                    loop.call_soon_threadsafe(_settle, done, value)

            thread = threading.Thread(target=work, name="rollout-worker", daemon=True)
            thread.start()
            try:
                done = await asyncio.shield(finished)
            except (FleetError, OSError) as e:
                log.warning("rollout worker: %s", e)
            except asyncio.CancelledError:
                shutdown.set()
                try:
                    await asyncio.wait_for(asyncio.shield(finished), stop_grace_s)
                except (TimeoutError, FleetError, OSError):
                    log.warning(
                        "rollout worker: the batch under way did not end within %.0f s of the"
                        " stop; the next start takes the rollout over", stop_grace_s,
                    )  # fmt: skip
                raise
            else:
                if done is not None:
                    log.info("rollout %s %s: %s", done.id, done.state, done.reason)
            await asyncio.sleep(poll_s)
    finally:
        shutdown.set()


def _settle(future: asyncio.Future[Rollout | None], value: object) -> None:
    if future.done():
        return
    if isinstance(value, BaseException):
        future.set_exception(value)
    else:
        future.set_result(value)  # type: ignore[arg-type]


__all__ = [
    "MAX_UPLOAD",
    "RELEASES_PATH",
    "STOP_GRACE_S",
    "RolloutRequest",
    "routes",
    "run_rollouts",
]
