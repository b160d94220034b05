"""Release bundles uploaded over HTTP (POST /api/v1/fleet/releases, `estran fleet release add
--hub URL`), from outside: a real hub process (`estran hub run`), the admin's command line and
plain HTTP clients; no hub code in this process.

An admin's upload is checked and signed like `release add` on the hub's machine and is then
served to gateways; a reader's or a technician's token gets 403, no token 401; a bundle with a
file altered, missing, extra or oddly named gets 422 with its reason, and nothing is kept; a
bundle over the limit gets 413 before its body is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import io
import json
import subprocess
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from estran.rig import HubProcess, Rig, estran_argv
from protocols import signed
from protocols.update_job import check_manifest

pytestmark = pytest.mark.needs("broker.embedded", "database", "hub")
REPO = Path(__file__).resolve().parents[1]
OVER_ANY_LIMIT = 1 << 40  # announced, never sent


class Running:
    def __init__(self, hub: HubProcess, admin: str, tokens: dict[str, str]) -> None:
        self.hub, self.admin, self.tokens = hub, admin, tokens
        self.port = hub.http_port

    @property
    def url(self) -> str:
        return self.hub.url

    def post(
        self, body: bytes, token: str | None, headers: dict[str, str] | None = None
    ) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            h = {"Content-Type": "application/x-tar", **(headers or {})}
            if token is not None:
                h["Authorization"] = f"Bearer {token}"
            if "Content-Length" in h:  # said, not sent: the hub must not wait for it
                conn.putrequest("POST", "/api/v1/fleet/releases")
                for k, v in h.items():
                    conn.putheader(k, v)
                conn.endheaders(body)
            else:
                conn.request("POST", "/api/v1/fleet/releases", body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        try:
            return r.status, json.loads(data)
        except ValueError:
            return r.status, data

    def get(self, path: str) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read()
        finally:
            conn.close()


def cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(estran_argv(*args), capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.fixture
async def hub(rig: Rig) -> AsyncIterator[Running]:
    """The hub, its admin's token, and a reader's and a technician's (`estran hub user add`,
    `estran hub token create`, as an admin does on the hub's machine)."""
    h = await rig.hub(broker="broker.embedded")
    tokens = {}
    for role in ("reader", "technician"):
        for args in (("user", "add", f"a-{role}", "--role", role),
                     ("token", "create", f"a-{role}", "--json")):  # fmt: skip
            proc = await asyncio.to_thread(cli, "hub", args[0], "--data", str(h.data), *args[1:])
            assert proc.returncode == 0, proc.stderr
        tokens[role] = str(json.loads(proc.stdout)["token"])
    yield Running(h, await h.token(), tokens)


def bundle(tmp: Path, version: str = "1.0.1") -> Path:
    """`estran fleet release build --wheel W` in the repository (a stand-in wheel: the hub
    checks a bundle, it does not install it)."""
    wheel = tmp / f"estran-{version}-py3-none-any.whl"
    wheel.write_bytes(b"wheel bytes of " + version.encode())
    proc = cli("fleet", "release", "build", "--wheel", str(wheel), "--out", str(tmp / "dist"))
    assert proc.returncode == 0, proc.stderr
    return Path(proc.stdout.strip().splitlines()[-1])


def retar(src: Path, dst: Path, change: str) -> Path:
    """`src` with one change: a file altered after the manifest was made, one missing, one
    the manifest does not list, or one named outside the bundle."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        members = tin.getmembers()
        wheel = next(m.name for m in members if m.name.endswith(".whl"))
        for m in members:
            data = tin.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            if change == "missing" and m.name == wheel:
                continue
            if change == "altered" and m.name == wheel:
                data = data[:-1] + bytes([data[-1] ^ 1])
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
        if change in ("extra", "odd"):
            name = "playbooks/evil.yml" if change == "extra" else "../../evil.yml"
            info = tarfile.TarInfo(name)
            info.size = 5
            tout.addfile(info, io.BytesIO(b"evil\n"))
    return dst


async def test_upload_admin_only_checked_and_bounded(hub: Running, tmp_path: Path) -> None:
    """One hub for every case (its start dominates the test's time)."""
    good = await asyncio.to_thread(bundle, tmp_path)
    body = good.read_bytes()

    assert (await asyncio.to_thread(hub.post, body, None))[0] == 401
    for role, token in hub.tokens.items():
        status, answer = await asyncio.to_thread(hub.post, body, token)
        assert status == 403, (role, answer)
    assert (await asyncio.to_thread(hub.post, body, "et-not-a-token"))[0] == 401

    # the admin's command line: streamed to the hub, checked, signed, served
    proc = await asyncio.to_thread(
        cli, "fleet", "release", "add", "--hub", hub.url, "--token", hub.admin, str(good), "--json"
    )
    assert proc.returncode == 0, proc.stderr
    added = json.loads(proc.stdout)
    assert added["version"] == "1.0.1" and added["added_by"] != "anonymous"
    status, manifest = await asyncio.to_thread(hub.get, "/api/v1/releases/1.0.1/manifest")
    assert status == 200
    _, wheel, files = check_manifest(signed.decode_signed(manifest).document())
    status, data = await asyncio.to_thread(hub.get, f"/api/v1/releases/1.0.1/files/{wheel}")
    assert status == 200 and hashlib.sha256(data).hexdigest() == files[wheel][0]
    # the same bundle again: a no-op; the audit says it once
    assert (await asyncio.to_thread(hub.post, body, hub.admin))[0] == 201
    audit = json.loads(await hub.hub.fleet("audit", "--target", "1.0.1", "--json"))
    assert [e["action"] for e in audit] == ["release.add"], audit

    await tampered_and_oversized(hub, tmp_path)


async def tampered_and_oversized(hub: Running, tmp_path: Path) -> None:
    """A tampered bundle: 422 with its reason; an oversized one: 413."""
    good = await asyncio.to_thread(bundle, tmp_path, "1.0.2")
    cases = {
        "altered": "checksum",
        "missing": "missing_files",
        "extra": "extra_files",
        "odd": "unsafe_name",
        "garbage": "not_a_bundle",
    }
    for change, reason in cases.items():
        if change == "garbage":
            body = b"not a tar file at all" * 100
        else:
            body = retar(good, tmp_path / f"{change}.tar", change).read_bytes()
        status, answer = await asyncio.to_thread(hub.post, body, hub.admin)
        assert status == 422, (change, answer)
        assert isinstance(answer, dict) and answer["detail"]["reason"] == reason, answer
        assert str(tmp_path) not in json.dumps(answer)  # no path of the hub's disk said back
    assert (await asyncio.to_thread(hub.get, "/api/v1/releases/1.0.2/manifest"))[0] == 404
    leftovers = [p.name for p in (hub.hub.data / "fleet").iterdir() if p.name.startswith(".")]
    assert [n for n in leftovers if n.startswith((".upload", ".add"))] == []
    # the command line says the reason, no traceback
    proc = await asyncio.to_thread(
        cli, "fleet", "release", "add", "--hub", hub.url, "--token", hub.admin,
        str(tmp_path / "altered.tar"),
    )  # fmt: skip
    assert proc.returncode == 1 and "(422): checksum" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr

    # over the limit: 413 on the length the client announces, before the body is read
    # (it never comes here)
    status, answer = await asyncio.to_thread(
        hub.post, b"", hub.admin, {"Content-Length": str(OVER_ANY_LIMIT)}
    )
    assert status == 413, answer
