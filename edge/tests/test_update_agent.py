"""The gateway's update agent and job runner (edge/update) without Ansible: real signed
messages, real files, real HTTP for the bundle; the process start is recorded instead of
run (hil-tests/test_pull_updates.py runs the whole thing)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import http.server
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.identity import GatewayState
from edge.update import Journal, UpdateAgent, UpdateState, read_journal, run_job
from edge.update._runner import job_lock
from edge.update._trust import load_trusted_keys, write_trusted_keys
from protocols import signed, update_job, wire

GW = "gw-017"


class Hub:
    """The hub's signing key, as the fleet's keyring uses it."""

    def __init__(self) -> None:
        self.key = Ed25519PrivateKey.generate()
        self.public = self.key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.kid = signed.key_id(self.public)

    def sign(self, context: bytes, doc: dict[str, object]) -> bytes:
        payload = signed.encode_payload(doc)
        sig = self.key.sign(signed.signing_input(context, payload))
        return signed.encode_signed(signed.Signed(payload, [(self.kid, sig)]))


def job_doc(seq: int, gateway: str = GW, ttl_ms: int = 60_000, **over: object) -> dict[str, object]:
    now = int(time.time() * 1000)
    job = update_job.UpdateJob(
        gateway, f"u{seq}-{gateway}", seq, os.urandom(16), now, now + ttl_ms, "1.0.1",
        "http://127.0.0.1:1/r/manifest", "http://127.0.0.1:1/r/files/", "ab" * 32,
    )  # fmt: skip
    return job.document() | over


def message(body: bytes) -> bytes:
    return wire.encode_envelope(wire.Envelope(wire.CMD, body))


@pytest.fixture
def hub() -> Hub:
    return Hub()


@pytest.fixture
def agent(tmp_path: Path, hub: Hub) -> tuple[UpdateAgent, list[Path], dict[str, bytes]]:
    data = tmp_path / "data"
    with contextlib.closing(GatewayState(data)) as state:
        state.set_trusted_keys({hub.kid: hub.public})
        trusted = state.trusted_keys()
    started: list[Path] = []

    def launcher(job_dir: Path) -> None:
        started.append(job_dir)

    config = tmp_path / "etc/edge.toml"
    return UpdateAgent(data, config, GW, launcher=launcher), started, trusted


async def test_a_job_runs_once_and_every_refusal_has_its_code(
    agent: tuple[UpdateAgent, list[Path], dict[str, bytes]], hub: Hub
) -> None:
    a, started, trusted = agent
    good = message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(5)))
    assert a.claims(good)
    assert not a.claims(message(hub.sign(signed.CONTEXT_CMD, {"kind": "cmd", "gateway": GW})))
    await a.handle(good, trusted)
    assert len(started) == 1 and started[0].name == f"u5-{GW}"
    entries = read_journal(started[0] / "journal.jsonl")
    assert [(e["step"], e["outcome"]) for e in entries] == [("received", "running")]

    cases = {
        "replay": good,  # the same message again
        "foreign": message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(6, gateway="gw-018"))),
        "expired": message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(7, ttl_ms=1) | {"expires_ms": 2, "issued_ms": 1})),
        "signature": message(Hub().sign(update_job.CONTEXT_UPDATE, job_doc(8))),  # unknown key
        "malformed": message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(9) | {"seq": -1})),
    }  # fmt: skip
    # a signature made for a command never verifies as a job
    cmd_signed = hub.sign(signed.CONTEXT_CMD, job_doc(10))
    for msg in cases.values():
        await a.handle(msg, trusted)
    await a.handle(message(cmd_signed), trusted)
    # an older seq with a fresh id is a replay too
    await a.handle(message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(4))), trusted)
    assert len(started) == 1  # nothing else ran
    state = UpdateState.load(a.dir)
    assert state.refused == {
        "replay": 2, "foreign": 1, "expired": 1, "signature": 2, "malformed": 1,
    }  # fmt: skip
    assert state.seq == 5 and state.jobs == [f"u5-{GW}"]

    sent: list[dict[str, object]] = []

    async def publish(data: bytes) -> None:
        doc = wire.decode_envelope(data, wire.REPORT).value()
        assert isinstance(doc, dict)
        sent.append(update_job.check_report(doc))

    Journal(started[0], f"u5-{GW}", 5, "1.0.1").append("finished", "done", "updated to 1.0.1")
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.5):
            await a.pump(publish)
    refusals = [d for d in sent if d["outcome"] == "refused"]
    assert sorted(str(d["code"]) for d in refusals) == sorted(
        ["replay", "replay", "foreign", "expired", "signature", "signature", "malformed"]
    )
    assert refusals[0]["job"] == f"u5-{GW}" and refusals[0]["seq"] == 5  # the replay's claim
    mine = [
        (d["n"], d["step"]) for d in sent if d["job"] == f"u5-{GW}" and d["outcome"] != "refused"
    ]
    assert mine == [(1, "received"), (2, "finished")]
    assert UpdateState.load(a.dir).published == {f"u5-{GW}": 2}

    # a new session sends the last job's reports again (the hub keeps each once)
    sent.clear()
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(0.5):
            await a.pump(publish)
    assert [(d["n"], d["step"]) for d in sent] == [(1, "received"), (2, "finished")]


async def test_busy_and_a_dead_runner(
    agent: tuple[UpdateAgent, list[Path], dict[str, bytes]], hub: Hub
) -> None:
    a, started, trusted = agent
    with job_lock(a.dir):
        await a.handle(message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(1))), trusted)
    assert started == [] and UpdateState.load(a.dir).refused == {"busy": 1}
    await a.handle(message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(2))), trusted)
    (started[0] / "runner.pid").write_text("999999\n")  # took the lock, then was killed

    sent: list[object] = []

    async def publish(data: bytes) -> None:
        sent.append(wire.decode_envelope(data, wire.REPORT).value())

    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1.5):
            await a.pump(publish)
    last = read_journal(started[0] / "journal.jsonl")[-1]
    assert (last["step"], last["outcome"]) == ("finished", "failed")
    assert "runner stopped before the end" in str(last["reason"])


@contextlib.contextmanager
def serve(root: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def release(root: Path, hub: Hub, signer: Hub | None = None) -> bytes:
    files = root / "r" / "files"
    (files / "playbooks").mkdir(parents=True)
    (files / "estran-1.0.1-py3-none-any.whl").write_bytes(b"wheel" * 100)
    (files / "playbooks/update.yml").write_text("---\n")
    manifest = {
        "kind": "release", "version": "1.0.1", "wheel": "estran-1.0.1-py3-none-any.whl",
        "files": {
            str(p.relative_to(files)): {"sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
                                        "size": p.stat().st_size}
            for p in files.rglob("*") if p.is_file()
        },
    }  # fmt: skip
    data = (signer or hub).sign(update_job.CONTEXT_RELEASE, manifest)
    (root / "r" / "manifest").write_bytes(data)
    return data


def root_copy(prefix: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Root's copy of the hub keys (/opt/estran/trusted-keys.json, as provision.yml writes
    it), found by the runner beside pull.json: `prefix` stands for /opt/estran."""
    prefix.mkdir(mode=0o755, exist_ok=True)
    prefix.chmod(0o755)
    out = prefix / "trusted-keys.json"
    assert write_trusted_keys(out, prefix / "no-state", {hub.kid: hub.public}).startswith("changed")
    monkeypatch.setattr("edge.update._runner.vars_path", lambda: prefix / "pull.json")
    return out


def refused_code(job_dir: Path) -> tuple[str, str, str]:
    last = read_journal(job_dir / "journal.jsonl")[-1]
    return str(last["outcome"]), str(last.get("code")), str(last["reason"])


@pytest.mark.parametrize("fault", ["missing", "group_writable", "others_writable", "dir_writable",
                                   "symlink", "malformed"])  # fmt: skip
async def test_runner_refuses_hub_keys_that_are_not_roots(
    tmp_path: Path,
    agent: tuple[UpdateAgent, list[Path], dict[str, bytes]],
    hub: Hub,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The runner (root under systemd) trusts only its root-owned copy of the hub keys, and
    only when nobody else can write it or its directory: it refuses with code `trust`."""
    a, started, trusted = agent
    out = root_copy(tmp_path / "opt", hub, monkeypatch)
    if fault == "missing":
        out.unlink()
    elif fault == "group_writable":
        out.chmod(0o664)
    elif fault == "others_writable":
        out.chmod(0o646)
    elif fault == "dir_writable":
        out.parent.chmod(0o777)
    elif fault == "symlink":
        (tmp_path / "elsewhere.json").write_bytes(out.read_bytes())
        out.unlink()
        out.symlink_to(tmp_path / "elsewhere.json")
    elif fault == "malformed":
        out.write_text('{"keys": {"abc": "not a key"}}')
    await a.handle(message(hub.sign(update_job.CONTEXT_UPDATE, job_doc(3))), trusted)
    assert run_job(started[0]) == 1
    outcome, code, reason = refused_code(started[0])
    assert (outcome, code) == ("refused", "trust"), reason
    assert str(out) in reason or str(out.parent) in reason


async def test_a_key_planted_in_the_gateway_state_is_not_trusted_by_the_runner(
    tmp_path: Path,
    agent: tuple[UpdateAgent, list[Path], dict[str, bytes]],
    hub: Hub,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A compromised daemon writes a key of its own into state.json (it can: the file is its
    user's) and signs a job and a bundle with it: its own agent accepts the job, the runner
    refuses it, and `trust` (provision.yml) run again does not promote the planted key."""
    a, started, _ = agent
    out = root_copy(tmp_path / "opt", hub, monkeypatch)
    evil = Hub()
    with contextlib.closing(GatewayState(a.data_dir)) as state:
        state.set_trusted_keys({hub.kid: hub.public, evil.kid: evil.public})
        planted = state.trusted_keys()
    www = tmp_path / "www"
    data = release(www, hub, evil)
    with serve(www) as base:
        doc = job_doc(4) | {
            "bundle": {"manifest_url": f"{base}/r/manifest", "files_url": f"{base}/r/files/",
                       "manifest_sha256": hashlib.sha256(data).hexdigest()},
        }  # fmt: skip
        await a.handle(message(evil.sign(update_job.CONTEXT_UPDATE, doc)), planted)
        assert len(started) == 1  # the daemon's agent took it: it trusts the state
        assert run_job(started[0]) == 1
    outcome, code, reason = refused_code(started[0])
    assert (outcome, code) == ("refused", "signature"), reason
    before = out.read_bytes()
    assert write_trusted_keys(out, a.data_dir, None).startswith("unchanged")
    assert out.read_bytes() == before and evil.kid not in before.decode()
    # the file absent (a first provision, right after enrollment), the state's keys are copied
    with contextlib.closing(GatewayState(tmp_path / "fresh")) as state:
        state.set_trusted_keys({hub.kid: hub.public})
    out.unlink()
    assert write_trusted_keys(out, tmp_path / "fresh", None).startswith("changed")
    assert out.stat().st_mode & 0o777 == 0o644
    assert load_trusted_keys(out) == {hub.kid: hub.public}


@pytest.mark.parametrize("fault", ["wheel", "manifest_sha", "manifest_key", "no_ansible"])
async def test_runner_refuses_a_tampered_bundle_over_http(
    tmp_path: Path,
    agent: tuple[UpdateAgent, list[Path], dict[str, bytes]],
    hub: Hub,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    a, started, trusted = agent
    www = tmp_path / "www"
    data = release(www, hub, Hub() if fault == "manifest_key" else None)
    if fault == "wheel":  # changed after the hub signed the manifest
        (www / "r/files/estran-1.0.1-py3-none-any.whl").write_bytes(b"evil!" * 100)
    sha = hashlib.sha256(data).hexdigest() if fault != "manifest_sha" else "cd" * 32
    root_copy(tmp_path / "opt", hub, monkeypatch)
    if fault == "no_ansible":
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))
        monkeypatch.setattr("edge.update._runner.find_ansible_playbook", lambda setting="": None)
    with serve(www) as base:
        doc = job_doc(3) | {
            "bundle": {"manifest_url": f"{base}/r/manifest", "files_url": f"{base}/r/files/",
                       "manifest_sha256": sha},
        }  # fmt: skip
        await a.handle(message(hub.sign(update_job.CONTEXT_UPDATE, doc)), trusted)
        rc = run_job(started[0])
    assert rc == 1
    last = read_journal(started[0] / "journal.jsonl")[-1]
    expected = {
        "wheel": "bundle_checksum",
        "manifest_sha": "bundle_checksum",
        "manifest_key": "bundle_invalid",
        "no_ansible": "unsupported",
    }[fault]
    assert (last["step"], last["outcome"], last["code"]) == ("finished", "refused", expected), last
    assert not (started[0] / "bundle").exists()  # nothing downloaded is kept
    json.dumps(last)  # what the daemon publishes
