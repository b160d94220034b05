"""What the hub believes of a gateway's numbers (docs/hub.md, "Plausibility").

Nothing a gateway sends is dropped for being odd, but odd values must not take over what
everyone reads:

- A reading dated before `MIN_TS_MS` (a gateway whose clock restarted at 1970) or more than
  `MAX_AHEAD_MS` ahead of the hub's clock (year 9999) is stored with
  `FLAG_IMPLAUSIBLE_TIME`: served in time-range queries, counted, never its series' latest.
- NaN is stored with `FLAG_NOT_A_NUMBER` (SQLite keeps a NaN as NULL): the API serves it,
  like ±infinity, as `"value": null` with `"value_special": "NaN"` (or "+Inf", "-Inf"), so a
  non-finite value is never mistaken for a real null.
- A gateway's session counts its MQTT connections from at least the wall-clock seconds of
  its first start (edge/uplink/_session.py), so a session far above the hub's clock in
  seconds is not a real one: a state message with a session beyond `now_s +
  MAX_SESSION_AHEAD` is rejected (reason `implausible`), so that it cannot pin a gateway
  "online" for ever (a later real session could never pass it).
- A resent sequence whose values differ from the stored ones keeps the stored reading and
  is recorded as a `conflicting_duplicate` rejection of the gateway (count, last detail).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hub.storage import GatewayState, IngestBatch
from protocols.errors import RemoteProtocolError
from protocols.reading import FLAG_IMPLAUSIBLE_TIME, FLAG_NOT_A_NUMBER, HUB_FLAGS

MIN_TS_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z: older than any gateway of the fleet
MAX_AHEAD_MS = 10 * 60 * 1000  # ten minutes of clock skew
MAX_SESSION_AHEAD = (
    10_000_000  # connections beyond the wall-clock seconds (one every 3 s for a year)
)
IMPLAUSIBLE = "implausible"
CONFLICT = "conflicting_duplicate"


@dataclass(frozen=True, slots=True)
class Marks:
    implausible_time: int = 0
    not_a_number: int = 0


def mark_batch(batch: IngestBatch, now_ms: int) -> Marks:
    """Clear the hub's own flag bits a gateway may have set, then set them where due."""
    latest_ok = now_ms + MAX_AHEAD_MS
    flags, ts_ms, values = batch.flags, batch.ts_ms, batch.values
    odd_time = nan = 0
    for i, ts in enumerate(ts_ms):
        f = flags[i] & ~HUB_FLAGS
        if not MIN_TS_MS <= ts <= latest_ok:
            f |= FLAG_IMPLAUSIBLE_TIME
            odd_time += 1
        v = values[i]
        if type(v) is float and math.isnan(v):
            f |= FLAG_NOT_A_NUMBER
            nan += 1
        flags[i] = f
    return Marks(odd_time, nan)


def check_session(state: GatewayState, now_ms: int) -> None:
    if state.session > now_ms // 1000 + MAX_SESSION_AHEAD:
        raise RemoteProtocolError(
            IMPLAUSIBLE, f"session {state.session} is beyond any real connection count"
        )


def special(value: object) -> str | None:
    """How JSON shows a non-finite float (it has no NaN or infinity), else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("+Inf" if value > 0 else "-Inf")
    return None


__all__ = [
    "CONFLICT",
    "IMPLAUSIBLE",
    "MAX_AHEAD_MS",
    "MAX_SESSION_AHEAD",
    "MIN_TS_MS",
    "Marks",
    "check_session",
    "mark_batch",
    "special",
]
