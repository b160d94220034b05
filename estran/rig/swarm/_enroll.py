"""Enrolling many simulated gateways through the hub's real enrollment API.

An admin issues one token per gateway (`POST /api/v1/fleet/tokens`, an admin's API token);
each gateway enrolls as `estran edge enroll` does (`edge.identity.enroll`: its own Ed25519
key, challenge, proof of possession, the signed answer checked against the pinned hub key),
from its own loopback address (127.1.x.y): the hub limits enrollment to 60 requests a minute
per address, as it would see thousands of gateways on a network. Linux routes all of
127.0.0.0/8 to the loopback interface, so no set-up is needed.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

from edge.identity import EnrollError, enroll

ENROLL_THREADS = 8
TIMEOUT_S = 30.0


def source_address(index: int) -> str:
    """The loopback address gateway `index` enrolls from (127.1.0.0 and up; 65,536 of them)."""
    return f"127.1.{(index >> 8) & 255}.{index & 255}"


def _request(
    url: str,
    method: str,
    body: dict[str, object] | None,
    *,
    token: str | None = None,
    source: str | None = None,
) -> tuple[int, object]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1",
        parts.port or 80,
        timeout=TIMEOUT_S,
        source_address=(source, 0) if source else None,
    )
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    try:
        conn.request(
            method,
            parts.path + (f"?{parts.query}" if parts.query else ""),
            json.dumps(body).encode() if body is not None else None,
            headers,
        )
        resp = conn.getresponse()
        data = resp.read(1 << 22)
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data) if data else None
    except ValueError:
        return resp.status, data.decode(errors="replace")


def bound_post(source: str) -> Callable[[str, dict[str, object]], dict[str, object]]:
    """A `post` for `edge.identity.enroll` sending from `source` (an address of this host)."""

    def post(url: str, body: dict[str, object]) -> dict[str, object]:
        try:
            status, data = _request(url, "POST", body, source=source)
        except OSError as e:
            raise EnrollError(f"cannot reach the hub at {url}: {e}") from e
        if status != 200 or not isinstance(data, dict):
            detail = data.get("detail") if isinstance(data, dict) else data
            raise EnrollError(f"the hub refused ({status}): {detail}")
        return data

    return post


def create_tokens(
    hub_url: str, admin_token: str, group: str, n: int, *, site: str | None = None
) -> list[str]:
    """`n` one-use enrollment tokens of `group` (an admin's API token)."""
    url = hub_url.rstrip("/") + "/api/v1/fleet/tokens"

    def one(_: int) -> str:
        status, data = _request(
            url, "POST", {"group": group, "ttl_s": 3600, "site": site}, token=admin_token
        )
        if status != 200 or not isinstance(data, dict) or not isinstance(data.get("token"), str):
            raise EnrollError(f"token refused ({status}): {data}")
        return str(data["token"])

    with ThreadPoolExecutor(ENROLL_THREADS) as pool:
        return list(pool.map(one, range(n)))


def enroll_gateway(hub_url: str, token: str, data_dir: Path, index: int) -> str:
    """Enroll one gateway into `data_dir` from its own address; its gateway id."""
    done = enroll(
        hub_url,
        token,
        data_dir,
        post=bound_post(source_address(index)),
    )
    return done.identity.gateway_id


def enroll_many(
    hub_url: str,
    admin_token: str,
    group: str,
    dirs: list[Path],
    *,
    first_index: int = 0,
    site: str | None = None,
) -> tuple[list[str], float]:
    """Enroll a gateway into each of `dirs` (tokens first); (gateway ids, seconds taken)."""
    started = time.monotonic()
    tokens = create_tokens(hub_url, admin_token, group, len(dirs), site=site)
    jobs = list(enumerate(zip(tokens, dirs, strict=True), start=first_index))
    with ThreadPoolExecutor(ENROLL_THREADS) as pool:
        ids = list(pool.map(lambda j: enroll_gateway(hub_url, j[1][0], j[1][1], j[0]), jobs))
    return ids, time.monotonic() - started


__all__ = ["bound_post", "create_tokens", "enroll_gateway", "enroll_many", "source_address"]
