"""The root of the gateway's errors, as `protocols.errors.ProtocolError` is of the codecs'.

Every error that edge/ raises on purpose derives from `EdgeError`, through the root of its
package: `BufferFailure` (edge.buffer), `ConfigError` (edge.config), `ApplyError` and
`Refused` (edge.config_apply), `MqttProbeError` (edge.doctor), `StatusUnavailable`
(edge.health), `IdentityError` and `ConfigFileError` (edge.identity), `SerialError` and
`BleError` (edge.sources), `UplinkError` (edge.uplink). A caller that must not let the
gateway's refusals escape (a command, the daemon's supervisor) catches `EdgeError`, and a bug
(a `TypeError`, a `KeyError`) still shows as one. A peer's garbage stays a
`protocols.errors.RemoteProtocolError`: codecs raise, the gateway counts.
"""


class EdgeError(Exception):
    """Root of every error raised by edge/ on purpose."""


__all__ = ["EdgeError"]
