"""Topic names and filters (MQTT 3.1.1, 4.7): validation and matching."""

from __future__ import annotations

SHARE_PREFIX = "$share/"


def valid_topic(topic: str) -> bool:
    """A topic name a client may publish to: not empty, no wildcard."""
    return bool(topic) and "+" not in topic and "#" not in topic


def valid_filter(pattern: str) -> bool:
    """A topic filter: '#' alone and last in its level, '+' alone in its level."""
    if not pattern:
        return False
    levels = pattern.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            return False
        if "+" in level and level != "+":
            return False
    return True


def split_shared(pattern: str) -> tuple[str | None, str]:
    """`$share/<group>/<filter>` -> (group, filter); any other filter -> (None, filter).
    Raises ValueError on a malformed shared filter."""
    if not pattern.startswith(SHARE_PREFIX):
        return None, pattern
    group, sep, rest = pattern[len(SHARE_PREFIX) :].partition("/")
    if not sep or not group or "+" in group or "#" in group or not valid_filter(rest):
        raise ValueError(f"malformed shared subscription {pattern[:100]!r}")
    return group, rest


def matches(topic: str, pattern: str) -> bool:
    """Whether `topic` matches `pattern`. A filter starting with a wildcard does not match
    a topic starting with '$' (4.7.2)."""
    if topic.startswith("$") and pattern[:1] in ("+", "#"):
        return False
    t = topic.split("/")
    p = pattern.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(t) == len(p)


def has_wildcard(pattern: str) -> bool:
    return "+" in pattern or "#" in pattern


__all__ = ["SHARE_PREFIX", "has_wildcard", "matches", "split_shared", "valid_filter", "valid_topic"]
