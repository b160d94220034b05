"""A small typed reader over the parsed TOML tables that collects every problem it meets.

Each accessor returns a usable value even when the field is wrong (a placeholder, after the
problem is recorded), so that one pass over the file finds every error; the loader raises
`ConfigError` at the end if any were recorded. Unknown keys are errors too (with a
suggestion): a typo must never be silently ignored on a gateway that runs for years.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence

from edge.config._errors import ConfigIssue
from protocols.quantities import parse_duration, parse_size

Check = Callable[[str], str | None]  # returns a problem description, or None when fine


def show(value: object) -> str:
    """A value as the technician wrote it in TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return repr(value)


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def _range(lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        return f"must be {lo:g}..{hi:g}"
    if lo is not None:
        return f"must be at least {lo:g}"
    return f"must be at most {hi:g}"


class Fields:
    """The fields of one TOML table at `path`, read with validation."""

    def __init__(self, data: Mapping[str, object], path: str, issues: list[ConfigIssue]) -> None:
        self.data = data
        self.path = path
        self.issues = issues
        self._seen: set[str] = set()

    # -- plumbing ------------------------------------------------------------------------

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str | int | None, message: str) -> None:
        self.issues.append(ConfigIssue(self.path if key is None else self.at(key), message))

    def has(self, key: str) -> bool:
        return key in self.data

    def consumed(self, key: str) -> bool:
        """Whether an accessor already read `key`."""
        return key in self._seen

    def reject(self, key: str, message: str) -> None:
        """Record `key` as wrong for `message` (and no longer unknown)."""
        self._seen.add(key)
        self.error(key, message)

    def _get(self, key: str) -> object:
        self._seen.add(key)
        return self.data.get(key)

    def done(self, ignore: Sequence[str] = ()) -> None:
        """Record every key that no accessor asked for as unknown."""
        known = self._seen | set(ignore)
        for key in self.data:
            if key in known:
                continue
            close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            self.error(key, f"unknown field{hint}")

    # -- scalars -------------------------------------------------------------------------

    def text(
        self,
        key: str,
        default: str | None = None,
        *,
        choices: Sequence[str] | None = None,
        check: Check | None = None,
    ) -> str:
        """A string; required when `default` is None (then "" after recording the error)."""
        value = self.opt_text(key, choices=choices, check=check)
        if value is None:
            if default is None and key not in self.data:
                self.error(key, "required")
            return default if default is not None else ""
        return value

    def opt_text(
        self, key: str, *, choices: Sequence[str] | None = None, check: Check | None = None
    ) -> str | None:
        value = self._get(key)
        if value is None:
            return None
        if not isinstance(value, str):
            self.error(key, f"must be a string, got {show(value)}")
            return None
        if choices is not None and value not in choices:
            self.error(key, f"must be one of {', '.join(map(show, choices))}; got {show(value)}")
            return None
        if check is not None:
            problem = check(value)
            if problem:
                self.error(key, problem)
                return None
        return value

    def integer(
        self, key: str, default: int | None = None, *, lo: int | None = None, hi: int | None = None
    ) -> int:
        value = self.opt_integer(key, lo=lo, hi=hi)
        if value is None:
            if default is None and key not in self.data:
                self.error(key, "required")
            return default if default is not None else (lo or 0)
        return value

    def opt_integer(self, key: str, *, lo: int | None = None, hi: int | None = None) -> int | None:
        value = self._get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.error(key, f"must be a whole number, got {show(value)}")
            return None
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            self.error(key, f"{_range(lo, hi)}, got {value}")
            return None
        return value

    def number(
        self,
        key: str,
        default: float | None = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
    ) -> float:
        value = self.opt_number(key, lo=lo, hi=hi, positive=positive)
        if value is None:
            if default is None and key not in self.data:
                self.error(key, "required")
            return default if default is not None else (lo or 0.0)
        return value

    def opt_number(
        self,
        key: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
    ) -> float | None:
        value = self._get(key)
        if value is None:
            return None
        return self._number(key, value, lo=lo, hi=hi, positive=positive)

    def _number(
        self,
        key: str | int,
        value: object,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
    ) -> float | None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.error(key, f"must be a number, got {show(value)}")
            return None
        number = float(value)
        if not math.isfinite(number):
            self.error(key, f"must be a finite number, got {show(value)}")
            return None
        if positive and number <= 0:
            self.error(key, f"must be greater than 0, got {show(value)}")
            return None
        if (lo is not None and number < lo) or (hi is not None and number > hi):
            self.error(key, f"{_range(lo, hi)}, got {show(value)}")
            return None
        return number

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"must be true or false, got {show(value)}")
            return default
        return value

    def duration(
        self,
        key: str,
        default: float | None = None,
        *,
        lo: float | None = None,
        hi: float | None = None,
    ) -> float:
        """Seconds: a number, or a string with a unit ("500ms", "30s", "5min", "1h", "7d")."""
        value = self.opt_duration(key, lo=lo, hi=hi)
        if value is None:
            if default is None and key not in self.data:
                self.error(key, "required")
            return default if default is not None else (lo or 0.0)
        return value

    def opt_duration(
        self, key: str, *, lo: float | None = None, hi: float | None = None
    ) -> float | None:
        value = self._get(key)
        if value is None:
            return None
        seconds: float | None
        if isinstance(value, str):
            seconds = parse_duration(value)
            if seconds is None:
                self.error(
                    key,
                    f'must be a duration such as 30, "30s", "5min", "1h" or "7d"; got {show(value)}',
                )
                return None
        else:
            seconds = self._number(key, value)
            if seconds is None:
                return None
        if seconds <= 0:
            self.error(key, f"must be a positive duration, got {show(value)}")
            return None
        if (lo is not None and seconds < lo) or (hi is not None and seconds > hi):
            self.error(key, f"{_range(lo, hi)} seconds, got {show(value)}")
            return None
        return seconds

    def size(self, key: str, default: int, *, lo: int = 0) -> int:
        """Bytes: an integer, or a string with a unit ("512 MiB", "2 GB")."""
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, str):
            parsed = parse_size(value)
            if parsed is None:
                self.error(
                    key, f'must be a size such as 268435456, "256 MiB" or "1 GB"; got {show(value)}'
                )
                return default
            size = parsed
        elif isinstance(value, int) and not isinstance(value, bool):
            size = value
        else:
            self.error(key, f"must be a size in bytes, got {show(value)}")
            return default
        if size < lo:
            self.error(key, f"must be at least {lo} bytes, got {show(value)}")
            return default
        return size

    # -- containers ----------------------------------------------------------------------

    def table(self, key: str) -> Fields:
        """A sub-table (empty when absent)."""
        value = self._get(key)
        path = self.at(key)
        if value is None:
            return Fields({}, path, self.issues)
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_kind(value)}")
            return Fields({}, path, self.issues)
        return Fields(value, path, self.issues)

    def tables(self, key: str) -> list[Fields]:
        """An array of tables (`[[key]]`); empty when absent."""
        value = self._get(key)
        if value is None:
            return []
        if isinstance(value, dict):
            self.error(key, f"must be an array of tables ([[{key}]]), got a single table")
            return []
        if not isinstance(value, list):
            self.error(key, f"must be an array of tables, got {_kind(value)}")
            return []
        out: list[Fields] = []
        for index, item in enumerate(value):
            path = f"{self.at(key)}[{index}]"
            if not isinstance(item, dict):
                self.issues.append(ConfigIssue(path, f"must be a table, got {_kind(item)}"))
                continue
            out.append(Fields(item, path, self.issues))
        return out

    def named_tables(self, key: str) -> list[tuple[str, Fields]]:
        """A table of tables (`[key.name]`), in file order."""
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_kind(value)}")
            return []
        out: list[tuple[str, Fields]] = []
        for name, item in value.items():
            path = f"{self.at(key)}.{name}"
            if not isinstance(item, dict):
                self.issues.append(ConfigIssue(path, f"must be a table, got {_kind(item)}"))
                continue
            out.append((name, Fields(item, path, self.issues)))
        return out

    def str_list(self, key: str, *, check: Check | None = None) -> list[str]:
        value = self._get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self.error(key, f"must be an array of strings, got {_kind(value)}")
            return []
        out: list[str] = []
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.issues.append(
                    ConfigIssue(f"{self.at(key)}[{index}]", f"must be a string, got {show(item)}")
                )
                continue
            problem = check(item) if check else None
            if problem:
                self.issues.append(ConfigIssue(f"{self.at(key)}[{index}]", problem))
                continue
            out.append(item)
        return out

    def str_map(self, key: str, *, check: Check | None = None) -> dict[str, str]:
        """A table of strings (`{ "EAST" = "energy" }`)."""
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(key, f"must be a table of strings, got {_kind(value)}")
            return {}
        out: dict[str, str] = {}
        for name, item in value.items():
            path = f"{self.at(key)}.{name}"
            if not isinstance(item, str):
                self.issues.append(ConfigIssue(path, f"must be a string, got {show(item)}"))
                continue
            problem = check(item) if check else None
            if problem:
                self.issues.append(ConfigIssue(path, problem))
                continue
            out[name] = item
        return out

    def number_or_map(self, key: str, *, lo: float = 0.0) -> tuple[float | None, dict[str, float]]:
        """A number for every quantity, or a table quantity → number (`"*"` for the rest)."""
        value = self._get(key)
        if value is None:
            return None, {}
        if isinstance(value, dict):
            out: dict[str, float] = {}
            sub = Fields(value, self.at(key), self.issues)
            for name, item in value.items():
                number = sub._number(name, item, lo=lo)
                if number is not None:
                    out[name] = number
            return out.pop("*", None), out
        return self._number(key, value, lo=lo), {}


__all__ = ["Fields", "show"]
