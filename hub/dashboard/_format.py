"""How numbers, times and sizes read on a page, in French or English."""

from __future__ import annotations

import math
from datetime import UTC, datetime

_NARROW_NBSP = "\u202f"  # French thousands separator


def number(value: object, lang: str, digits: int = 2) -> str:
    """A value as people write it: 1 234,5 in French, 1,234.5 in English; text as it is."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        text = f"{value:,}"
    elif isinstance(value, float):
        if not math.isfinite(value):
            return "—"
        text = f"{value:,.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:,.0f}"
        if text in ("-0", ""):
            text = "0"
    else:
        return str(value)
    if lang == "fr":
        return text.replace(",", _NARROW_NBSP).replace(".", ",")
    return text


def when(ts_ms: int | None) -> str:
    """A UTC date and time to the second, or a dash."""
    if ts_ms is None:
        return "—"
    try:
        dt = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return "—"
    return dt.strftime("%Y-%m-%d %H:%M:%S")


def iso(ts_ms: int | None) -> str:
    """The machine-readable form for <time datetime=...>."""
    if ts_ms is None:
        return ""
    try:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return ""


def duration(seconds: float | None, lang: str) -> str:
    """3 s, 5 min, 2 h 10 min, 4 d (j in French)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = int(abs(seconds))
    day = "j" if lang == "fr" else "d"
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        h, m = divmod(s // 60, 60)
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(s // 3600, 24)
    return f"{d} {day} {h} h" if h else f"{d} {day}"


def ago(ts_ms: int | None, now_ms: int, lang: str) -> str:
    """How long ago, in plain words."""
    if ts_ms is None:
        return "jamais" if lang == "fr" else "never"
    text = duration((now_ms - ts_ms) / 1000, lang)
    if now_ms < ts_ms - 5000:
        return f"dans {text}" if lang == "fr" else f"in {text}"
    return f"il y a {text}" if lang == "fr" else f"{text} ago"


def size(n: float | None, lang: str) -> str:
    """Bytes in KB/MB/GB (decimal, as disks are sold)."""
    if n is None or not math.isfinite(n):
        return "—"
    units = ("o", "ko", "Mo", "Go", "To") if lang == "fr" else ("B", "kB", "MB", "GB", "TB")
    value, i = float(n), 0
    while abs(value) >= 1000 and i < len(units) - 1:
        value /= 1000
        i += 1
    return f"{number(round(value, 1) if i else int(value), lang, 1)} {units[i]}"


__all__ = ["ago", "duration", "iso", "number", "size", "when"]
