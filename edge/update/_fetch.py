"""Downloads from the hub over HTTP(S): bounded in size and time, hashed as they stream to
disk. The hub's CA (kept at enrollment) verifies an https hub; integrity never rests on the
transport alone: every file is checked against the signed manifest."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from edge.update._errors import FetchError

TIMEOUT_S = 30.0
CHUNK = 1 << 16


def _open(url: str, context: ssl.SSLContext | None) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "estran-edge-update"})
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(
            request, timeout=TIMEOUT_S, context=context if url.startswith("https:") else None
        )
        return response
    except urllib.error.HTTPError as e:
        raise FetchError(f"GET {url}: HTTP {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise FetchError(f"GET {url}: {getattr(e, 'reason', e)}") from e


def fetch_bytes(url: str, limit: int, context: ssl.SSLContext | None = None) -> bytes:
    with _open(url, context) as response:
        try:
            data: bytes = response.read(limit + 1)
        except OSError as e:
            raise FetchError(f"GET {url}: {e}") from e
    if len(data) > limit:
        raise FetchError(f"GET {url}: more than {limit} bytes")
    return data


def fetch_file(
    url: str, dest: Path, limit: int, context: ssl.SSLContext | None = None
) -> tuple[str, int]:
    """Download `url` to `dest` (at most `limit` bytes): (sha256 hex, size)."""
    digest = hashlib.sha256()
    size = 0
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + ".part")
    try:
        with _open(url, context) as response, open(tmp, "wb") as out:
            while chunk := response.read(CHUNK):
                size += len(chunk)
                if size > limit:
                    raise FetchError(f"GET {url}: more than the {limit} bytes the manifest says")
                digest.update(chunk)
                out.write(chunk)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise FetchError(f"GET {url}: {e}") from e
    except FetchError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    os.replace(tmp, dest)
    return digest.hexdigest(), size


__all__ = ["fetch_bytes", "fetch_file"]
