"""The hub's update endpoints (hub/_rollouts_api.py): releases served to anyone (signed,
checksummed), rollouts and the inventory for admins only, hostile paths refused."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fleet._executor import GatewayResult, Mode, Outcome, ReleaseRef, RunAborted, StepEvent, Target
from fleet._releases import build_bundle
from hub._rollouts_api import run_rollouts
from hub.fleet_api import FleetHub
from hub.tests.fleet_support import enroll_directly
from protocols import signed
from protocols.update_job import check_manifest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hub(tmp_path: Path) -> FleetHub:
    h = FleetHub(tmp_path / "hub")
    wheel = tmp_path / "estran-1.0.1-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes")
    h.fleet.add_release(build_bundle(tmp_path / "dist", repo=REPO, wheel=wheel), "admin")
    return h


@pytest.fixture
def http(hub: FleetHub) -> TestClient:
    app = FastAPI()
    hub.access.install(app)
    app.include_router(hub.router())
    return TestClient(app)


def admin(hub: FleetHub) -> dict[str, str]:
    assert hub.new_admin_credential is not None
    return {"Authorization": f"Bearer {hub.new_admin_credential}"}


def test_a_release_is_served_without_a_credential(http: TestClient) -> None:
    r = http.get("/api/v1/releases/1.0.1/manifest")
    assert r.status_code == 200 and r.headers["content-type"] == "application/cbor"
    _, wheel, files = check_manifest(signed.decode_signed(r.content).document())
    body = http.get(f"/api/v1/releases/1.0.1/files/{wheel}").content
    assert hashlib.sha256(body).hexdigest() == files[wheel][0]
    update = http.get("/api/v1/releases/1.0.1/files/playbooks/update.yml")
    assert update.status_code == 200 and b"hosts:" in update.content


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/releases/1.0.1/files/manifest.signed/../../../fleet.sqlite",
        "/api/v1/releases/1.0.1/files/..%2F..%2Ffleet.sqlite",
        "/api/v1/releases/1.0.1/files/%2Fetc%2Fpasswd",
        "/api/v1/releases/..%2F..%2Fkeys/manifest",
        "/api/v1/releases/9.9.9/manifest",
    ],
)
def test_nothing_else_is_served(http: TestClient, path: str) -> None:
    r = http.get(path)
    assert r.status_code in (404, 422), (path, r.status_code)
    assert b"BEGIN PRIVATE KEY" not in r.content and b"SQLite" not in r.content


def test_rollouts_and_inventory_are_for_admins(hub: FleetHub, http: TestClient) -> None:
    gw, _ = enroll_directly(hub.fleet)
    for method, path in [
        ("get", "/api/v1/fleet/inventory"),
        ("post", "/api/v1/fleet/rollouts"),
        ("get", "/api/v1/fleet/rollouts"),
        ("post", "/api/v1/fleet/rollouts/1/cancel"),
    ]:
        assert getattr(http, method)(path).status_code == 401, path
    r = http.put(
        "/api/v1/fleet/hostvars/gateway",
        params={"name": gw},
        json={"ansible_host": "10.0.0.9"},
        headers=admin(hub),
    )
    assert r.status_code == 200, r.text
    bad = http.put(
        "/api/v1/fleet/hostvars/fleet", json={"ansible_password": "x"}, headers=admin(hub)
    )
    assert bad.status_code == 400 and "secret" in bad.json()["detail"]
    inv = http.get("/api/v1/fleet/inventory", headers=admin(hub)).json()
    assert inv["_meta"]["hostvars"][gw]["ansible_host"] == "10.0.0.9"
    assert inv["marina"]["hosts"] == [gw]
    r = http.post(
        "/api/v1/fleet/rollouts",
        json={"release": "1.0.1", "target": "group:marina", "canary": "1"},
        headers=admin(hub),
    )
    assert r.status_code == 201, r.text
    rid = r.json()["id"]
    assert r.json()["waves"][0]["gateways"][0]["gateway"] == gw
    assert http.post("/api/v1/fleet/rollouts", json={"release": "1.0.1"},
                     headers=admin(hub)).status_code == 409  # fmt: skip
    assert (
        http.post(f"/api/v1/fleet/rollouts/{rid}/pause", headers=admin(hub)).json()["state"]
        == "paused"
    )
    r = http.post(f"/api/v1/fleet/rollouts/{rid}/cancel", headers=admin(hub))
    assert r.json()["state"] == "cancelled"
    assert r.json()["counts"]["cancelled"] == 1
    again = http.post(f"/api/v1/fleet/rollouts/{rid}/resume", headers=admin(hub))
    assert again.status_code == 409
    assert http.get(f"/api/v1/fleet/rollouts/{rid}", headers=admin(hub)).json()["state"] == (
        "cancelled"
    )
    assert http.post("/api/v1/fleet/rollouts", json={"release": "2.0"},
                     headers=admin(hub)).status_code == 404  # fmt: skip


# -- the hub stops while a batch runs ------------------------------------------------------------


class _Blocking:
    """An executor whose batch runs until `stop` (abortable: it ends as the push executor
    does when the hub stops) or until `release` (stuck: an executor that ignores the stop)."""

    mode: Mode = "push"

    def __init__(self, *, abortable: bool) -> None:
        self.abortable = abortable
        self.started = threading.Event()
        self.release = threading.Event()

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]:
        self.started.set()
        if self.abortable:
            stop.wait(60)
            raise RunAborted("the hub stops")
        self.release.wait(60)
        now = int(time.time() * 1000)
        return [GatewayResult(t.gateway_id, Outcome.UPDATED, "", now, now) for t in targets]


class _Updates:
    mode: Mode = "push"

    def run(
        self,
        release: ReleaseRef,
        targets: Sequence[Target],
        on_event: Callable[[StepEvent], None],
        stop: threading.Event,
    ) -> list[GatewayResult]:
        now = int(time.time() * 1000)
        return [GatewayResult(t.gateway_id, Outcome.UPDATED, "", now, now) for t in targets]


async def _stop_while_running(hub: FleetHub, executor: _Blocking, grace: float) -> float:
    task = asyncio.create_task(
        run_rollouts(hub.fleet, "", 0.05, executors={"push": executor}, stop_grace_s=grace)
    )
    assert await asyncio.to_thread(executor.started.wait, 30)
    t0 = time.monotonic()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    return time.monotonic() - t0


async def test_a_stop_during_a_batch_is_bounded_and_the_next_start_takes_over(
    hub: FleetHub,
) -> None:
    """The hub stops while a batch runs: the batch is ended (push: ansible-playbook killed),
    the stop returns within the grace, the gateway stays `running` and the lease is released;
    the next start's worker takes the rollout over at once and runs the gateway again."""
    gw, _ = enroll_directly(hub.fleet)
    r = hub.fleet.create_rollout("1.0.1", "all", "admin", canary="0")
    blocking = _Blocking(abortable=True)
    took = await _stop_while_running(hub, blocking, grace=10)
    assert took < 5, took
    r = hub.fleet.rollout(r.id)
    assert r.state == "running" and [g.state for g in r.gateways] == ["running"]

    # the next start: taken over at once (the lease was released), the gateway run again
    t0 = time.monotonic()
    task = asyncio.create_task(run_rollouts(hub.fleet, "", 0.05, executors={"push": _Updates()}))
    try:
        while hub.fleet.rollout(r.id).state == "running" and time.monotonic() - t0 < 20:
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    r = hub.fleet.rollout(r.id)
    assert r.state == "done", r.reason
    assert [(g.gateway, g.state, g.attempts) for g in r.gateways] == [(gw, "updated", 2)]
    assert time.monotonic() - t0 < 10  # not the lease's 30 s


async def test_a_stop_does_not_wait_for_a_batch_that_ignores_it(hub: FleetHub) -> None:
    enroll_directly(hub.fleet)
    r = hub.fleet.create_rollout("1.0.1", "all", "admin", canary="0")
    stuck = _Blocking(abortable=False)
    try:
        took = await _stop_while_running(hub, stuck, grace=0.5)
        assert took < 3, took
        assert hub.fleet.rollout(r.id).state == "running"
    finally:
        stuck.release.set()
