"""Which MQTT protocol version a client speaks to a broker: the fallback policy, sans-IO.

Both sides of the fleet connect to brokers that may speak MQTT 5 (Mosquitto, EMQX) or only
3.1.1 (the embedded amqtt broker, which refuses an MQTT 5 CONNECT). The gateway's uplink
(edge.uplink) and the hub's clients (hub._mqtt) each do their own IO with aiomqtt; what to
try, in which order, with which time limit, and which failure means "try the next version"
is decided here, once:

- preference "auto": MQTT 5 first, then 3.1.1; "5" or "3.1.1": that version alone.
- An attempt followed by another one is a probe: its time limit is capped at
  `probe_timeout_s` (a broker that does not answer an MQTT 5 CONNECT should not cost the
  whole connect timeout).
- A CONNACK that refuses the protocol version (3.1.1 return code 1, MQTT 5 reason code
  0x84 = 132) means the broker does not speak it: the next version is tried, and the policy
  remembers that the broker speaks the next one.
- Any other CONNACK refusal (bad credentials, not authorised, server busy) would be the same
  at any version: no fallback.
- No answer at all (a time-out, a connection refused or closed, a socket error): the next
  version is tried this time only; the next connection asks again.
- A refused TLS handshake is a certificate problem, the same at any version: no fallback.
- A version the broker accepted is remembered, unless it was reached after a silence.

The memory lives in the `VersionFallback` object: keep one per broker for as long as what
it learnt should count (the uplink keeps one per process; the hub makes one per connection).

    fallback = VersionFallback("auto")
    for attempt in fallback.attempts(10.0):
        try:
            client = connect(attempt.version, attempt.timeout_s)  # the caller's IO
        except CONNACK refusal with code c:
            if fallback.failed(attempt, CONNACK, c):
                continue
            raise
        except time-out, socket error:
            if fallback.failed(attempt, NO_ANSWER):
                continue
            raise
        fallback.accepted(attempt)
        break

Pure and MicroPython-compatible, like every module of protocols.
"""

MQTT_311 = 4  # the protocol level a CONNECT carries
MQTT_5 = 5
PREFERENCES = {"auto": (MQTT_5, MQTT_311), "5": (MQTT_5,), "3.1.1": (MQTT_311,)}
# CONNACK codes meaning "not this protocol version": 3.1.1 return code 1 (unacceptable
# protocol version), MQTT 5 reason code 0x84 (unsupported protocol version).
BAD_VERSION = (1, 132)
PROBE_TIMEOUT_S = 3.0

# What went wrong with an attempt (the caller maps its exceptions onto these).
CONNACK = "connack"  # the broker answered CONNACK with a refusal code
NO_ANSWER = "no answer"  # a time-out, a connection refused or closed, a socket error
TLS = "tls"  # the TLS handshake was refused
FAILURES = (CONNACK, NO_ANSWER, TLS)


def version_name(version: "int") -> "str":
    return "5" if version == MQTT_5 else "3.1.1"


class Attempt:
    """One CONNECT to try: the protocol `version`, its time limit, and whether it is the
    `last` one (its failures are final)."""

    __slots__ = ("last", "timeout_s", "version")

    def __init__(self, version: "int", timeout_s: "float", last: "bool") -> "None":
        self.version = version
        self.timeout_s = timeout_s
        self.last = last

    @property
    def probe(self) -> "bool":
        """Whether a fallback follows this attempt (the version is a guess, not known)."""
        return not self.last

    def __eq__(self, other: "object") -> "bool":
        return (
            isinstance(other, Attempt)
            and self.version == other.version
            and self.timeout_s == other.timeout_s
            and self.last == other.last
        )

    def __repr__(self) -> "str":
        return "Attempt(%s, %r, last=%r)" % (
            version_name(self.version),
            self.timeout_s,
            self.last,
        )


class VersionFallback:
    """The versions to try for the next connection, and what the last ones taught."""

    __slots__ = ("_known", "_order", "_silent", "preference", "probe_timeout_s")

    def __init__(
        self, preference: "str" = "auto", probe_timeout_s: "float" = PROBE_TIMEOUT_S
    ) -> "None":
        if preference not in PREFERENCES:
            raise ValueError("MQTT version preference %r: auto, 5 or 3.1.1" % (preference,))
        self.preference = preference
        self.probe_timeout_s = probe_timeout_s
        self._order = PREFERENCES[preference]
        self._known: "int | None" = None
        self._silent = False

    @property
    def known(self) -> "int | None":
        """The version the broker is known to speak (None: it will be probed)."""
        return self._known

    def attempts(self, timeout_s: "float") -> "list[Attempt]":
        """The attempts of the next connection, in order (`timeout_s`: the connect time-out)."""
        self._silent = False
        versions = (self._known,) if self._known is not None else self._order
        out = []
        for i, version in enumerate(versions):
            last = i == len(versions) - 1
            limit = timeout_s if last else min(timeout_s, self.probe_timeout_s)
            out.append(Attempt(version, limit, last))
        return out

    def failed(self, attempt: "Attempt", failure: "str", code: "int | None" = None) -> "bool":
        """`attempt` failed with `failure` (CONNACK with its `code`, NO_ANSWER or TLS).
        True: try the next attempt; False: the failure is final, raise it."""
        if failure not in FAILURES:
            raise ValueError("unknown failure %r" % (failure,))
        if attempt.last:
            return False
        if failure == CONNACK:
            if code in BAD_VERSION:
                following = self._order[self._order.index(attempt.version) + 1]
                self._known = following  # the broker said so: no need to ask again
                return True
            return False
        if failure == NO_ANSWER:
            self._silent = True  # this time only: the next connection asks again
            return True
        return False

    def accepted(self, attempt: "Attempt") -> "None":
        """The broker accepted `attempt`'s version: remembered, unless a silence led here."""
        if not self._silent:
            self._known = attempt.version


__all__ = [
    "BAD_VERSION",
    "CONNACK",
    "FAILURES",
    "MQTT_5",
    "MQTT_311",
    "NO_ANSWER",
    "PREFERENCES",
    "PROBE_TIMEOUT_S",
    "TLS",
    "Attempt",
    "VersionFallback",
    "version_name",
]
