"""Rendering: the Jinja2 environment, the frame every page shares, and the security headers
of a page."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from hub.dashboard import _format
from hub.dashboard._i18n import COOKIE, Translator, negotiate

# Scripts, styles and images come from this server only; no inline script, no frame.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Vary": "Accept-Language, Cookie, Authorization",
}

_env = Environment(
    loader=PackageLoader("hub.dashboard", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True, slots=True)
class NavItem:
    href: str
    key: str  # text key


def language(request: Request) -> str:
    return negotiate(request.cookies.get(COOKIE), request.headers.get("accept-language"))


def render(
    request: Request,
    template: str,
    *,
    title: str,
    nav: list[NavItem],
    viewer: Mapping[str, object],
    status: int = 200,
    images: str | None = None,
    **context: object,
) -> HTMLResponse:
    """`images`: one more origin the page may load images from (the map's tile server)."""
    lang = language(request)
    t = Translator(lang)
    now_ms = time.time_ns() // 1_000_000
    html = _env.get_template(template).render(
        t=t,
        lang=lang,
        title=title,
        nav=nav,
        viewer=viewer,
        path=request.url.path,
        here=str(request.url.path) + (f"?{request.url.query}" if request.url.query else ""),
        now_ms=now_ms,
        colon="\u00a0: " if lang == "fr" else ": ",
        num=lambda v, digits=2: _format.number(v, lang, digits),
        when=_format.when,
        iso=_format.iso,
        ago=lambda ts: _format.ago(ts, now_ms, lang),
        duration=lambda s: _format.duration(s, lang),
        size=lambda n: _format.size(n, lang),
        **context,
    )
    headers = HEADERS
    if images is not None:
        headers = {
            **HEADERS,
            "Content-Security-Policy": CSP.replace(
                "img-src 'self' data:", f"img-src 'self' data: {images}"
            ),
        }
    return HTMLResponse(html, status_code=status, headers=headers)


__all__ = ["HEADERS", "NavItem", "language", "render"]
