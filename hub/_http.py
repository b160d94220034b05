"""HTTP hardening shared by every route of the hub: the client's address (forwarded headers
trusted only from configured proxies), request bodies bounded (413 before reading), rate
limits that say when to come back (429 with Retry-After), validation errors that never echo
a hostile input back in full, and error logs that cannot flood the disk.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_MAX_BODY = 1024 * 1024  # the ingest limit too: no request needs more
ENROLL_MAX_BODY = 16 * 1024  # the open enrollment endpoints take a few hundred bytes
ECHO_MAX = 64  # characters of a refused value said back in an error


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDR blocks (or single addresses) of trusted reverse proxies; ValueError if bad."""
    return tuple(ipaddress.ip_network(v.strip(), strict=False) for v in values if v.strip())


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(text: str, proxies: Sequence[Network]) -> bool:
    ip = _ip(text)
    return ip is not None and any(ip in net for net in proxies)


def client_address(request: Request, proxies: Sequence[Network] = ()) -> str:
    """The client's address: the peer, unless the peer is a trusted proxy; then the
    right-most address of X-Forwarded-For that is not a trusted proxy (what a client writes
    into the header itself is never believed)."""
    peer = request.client.host if request.client is not None else "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops: list[str] = []
    for header in request.headers.getlist("x-forwarded-for"):
        hops.extend(h.strip() for h in header.split(","))
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop if _ip(hop) is not None else peer
    return peer


def forwarded_https(request: Request, proxies: Sequence[Network] = ()) -> bool:
    """Whether the client spoke HTTPS (to us, or to a trusted proxy in front of us)."""
    if request.url.scheme == "https":
        return True
    peer = request.client.host if request.client is not None else ""
    if proxies and _trusted(peer, proxies):
        return request.headers.get("x-forwarded-proto", "").strip().lower() == "https"
    return False


class ForwardedScheme:
    """ASGI middleware: a request that a trusted proxy says came over HTTPS
    (`X-Forwarded-Proto: https`) is seen as https, so that the links the hub writes
    (SensorThings' `@iot.selfLink` and `@iot.nextLink`, `Link` headers) say https behind a TLS
    terminator. From anyone else the header is ignored. `proxies` is read per request."""

    def __init__(self, app: ASGIApp, proxies: Callable[[], Sequence[Network]]) -> None:
        self.app = app
        self.proxies = proxies

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("scheme") == "http":
            proxies = self.proxies()
            client = scope.get("client")
            if proxies and client and _trusted(str(client[0]), proxies):
                for name, value in scope.get("headers", ()):
                    if name == b"x-forwarded-proto" and value.strip().lower() == b"https":
                        scope = {**scope, "scheme": "https"}
                        break
        await self.app(scope, receive, send)


def echo(value: object) -> str:
    """A value said back in an error message, bounded."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= ECHO_MAX else text[:ECHO_MAX] + f"... ({len(text)} characters)"


class BodyLimit:
    """ASGI middleware: a body longer than its path's limit gets 413, before it is read when
    Content-Length says so, as soon as the limit is crossed otherwise (chunked)."""

    def __init__(
        self, app: ASGIApp, limit: int = DEFAULT_MAX_BODY, paths: dict[str, int] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.paths = dict(paths or {})
        self.refused = 0

    def limit_for(self, path: str) -> int:
        return self.paths.get(path.rstrip("/"), self.limit)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit() or len(value) > 18:
                    await _plain(send, 400, "bad Content-Length")
                    return
                if int(value) > limit:
                    self.refused += 1
                    await _plain(send, 413, f"request body over {limit} bytes")
                    return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    self.refused += 1
                    raise HTTPException(413, f"request body over {limit} bytes")
            return message

        await self.app(scope, bounded, send)


async def _plain(send: Send, status: int, detail: str) -> None:
    body = ('{"detail":"' + detail + '"}').encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    """422 naming each refused parameter, with the refused value bounded (a 100 KB id is not
    said back)."""
    assert isinstance(exc, RequestValidationError)
    detail: list[dict[str, Any]] = []
    for error in exc.errors()[:20]:
        loc = [str(part)[:ECHO_MAX] for part in error.get("loc", ())]
        item: dict[str, Any] = {
            "loc": loc,
            "parameter": loc[-1] if loc else None,
            "msg": str(error.get("msg", ""))[:200],
            "type": str(error.get("type", ""))[:64],
        }
        if "input" in error and isinstance(error["input"], str | int | float | bool):
            item["input"] = echo(error["input"])
        detail.append(item)
    return JSONResponse({"detail": detail}, status_code=422)


class RateLimit:
    """At most `per_minute` events per client address in any 60 s; the table of addresses
    is bounded (the oldest forgotten first). Thread-safe: FastAPI runs plain endpoints in
    threads."""

    def __init__(self, per_minute: int = 60, max_clients: int = 4096, window_s: float = 60.0):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self.window_s = window_s
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _window(self, client: str, t: float) -> deque[float]:
        hits = self._hits.pop(client, None) or deque(maxlen=self.per_minute)
        while hits and hits[0] <= t - self.window_s:
            hits.popleft()
        self._hits[client] = hits
        while len(self._hits) > self.max_clients:
            self._hits.popitem(last=False)
        return hits

    def allow(self, client: str, now: float | None = None) -> bool:
        """Count one event; False when over the limit (not counted then)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            hits = self._window(client, t)
            ok = len(hits) < self.per_minute
            if ok:
                hits.append(t)
            return ok

    def retry_after(self, client: str, now: float | None = None) -> int:
        """Seconds until `client` may try again (0: now)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            hits = self._window(client, t)
            if len(hits) < self.per_minute:
                return 0
            return max(1, math.ceil(hits[0] + self.window_s - t))

    def blocked(self, client: str, now: float | None = None) -> bool:
        return self.retry_after(client, now) > 0

    def too_many(self, client: str, what: str) -> HTTPException:
        return HTTPException(
            429,
            f"too many {what}: try again later",
            headers={"Retry-After": str(max(1, self.retry_after(client)))},
        )


class LogRateLimit(logging.Filter):
    """Lets at most `per_minute` records at ERROR or above through per logger and minute;
    then one line says how many were held back. A client that makes the hub fail on purpose
    cannot fill the disk with tracebacks."""

    def __init__(self, per_minute: int = 10) -> None:
        super().__init__()
        self.per_minute = per_minute
        self.suppressed = 0
        self._window_start = 0.0
        self._count = 0
        self._held = 0
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.ERROR:
            return True
        now = time.monotonic()
        with self._lock:
            if now - self._window_start >= 60.0:
                held, self._held = self._held, 0
                self._window_start, self._count = now, 0
                if held:
                    record.msg = (
                        f"({held} similar error records held back in the last minute) "
                        + str(record.msg)
                    )
            self._count += 1
            if self._count <= self.per_minute:
                return True
            self._held += 1
            self.suppressed += 1
            return False


def limit_error_logs(
    names: Iterable[str] = ("uvicorn.error",), per_minute: int = 10
) -> LogRateLimit:
    """Install one LogRateLimit on each named logger (once; the same filter is returned)."""
    existing = getattr(limit_error_logs, "_filter", None)
    flt = existing if isinstance(existing, LogRateLimit) else LogRateLimit(per_minute)
    limit_error_logs._filter = flt  # type: ignore[attr-defined]
    for name in names:
        logger = logging.getLogger(name)
        if flt not in logger.filters:
            logger.addFilter(flt)
    return flt


__all__ = [
    "DEFAULT_MAX_BODY",
    "ENROLL_MAX_BODY",
    "BodyLimit",
    "ForwardedScheme",
    "LogRateLimit",
    "Network",
    "RateLimit",
    "client_address",
    "echo",
    "forwarded_https",
    "limit_error_logs",
    "parse_networks",
    "validation_error",
]
