"""Checks of a job message and of the release bundle it names, each failure a `JobRefused`
with its code."""

from __future__ import annotations

from collections.abc import Mapping

from edge.config_apply import Refused, verify_signed
from edge.update._errors import JobRefused
from edge.update._state import UpdateState
from protocols import signed, update_job, wire
from protocols.errors import ProtocolError


def claimed(payload: bytes) -> tuple[str | None, int | None]:
    """The job id and seq a message claims, unverified (for the report of a refusal)."""
    try:
        body = wire.decode_envelope(payload, wire.CMD).body
        doc = signed.decode_signed(body).document()
    except ProtocolError:
        return None, None
    job, seq = doc.get("job"), doc.get("seq")
    ok_job = (
        isinstance(job, str)
        and 0 < len(job) <= 64
        and job.replace("-", "").replace("_", "").replace(".", "").isalnum()
        and job.isascii()
    )
    return (job if ok_job else None), (
        seq if isinstance(seq, int) and not isinstance(seq, bool) and seq >= 0 else None
    )  # type: ignore[return-value]


def verify_message(
    payload: bytes, trusted: Mapping[str, bytes], gateway_id: str
) -> update_job.UpdateJob:
    """The job of a `cmd` message, signed by a pinned hub key and meant for this gateway."""
    try:
        body = wire.decode_envelope(payload, wire.CMD).body
        signed.decode_signed(body)
    except ProtocolError as e:
        raise JobRefused(update_job.MALFORMED_JOB, f"not a signed job message: {e}") from e
    try:
        doc, _kid = verify_signed(body, update_job.CONTEXT_UPDATE, dict(trusted))
    except Refused as e:
        raise JobRefused(update_job.SIGNATURE, e.reason) from e
    try:
        job = update_job.check_job(doc)
    except ProtocolError as e:
        raise JobRefused(update_job.MALFORMED_JOB, str(e)) from e
    if job.gateway != gateway_id:
        raise JobRefused(update_job.FOREIGN, f"meant for gateway {job.gateway}, not {gateway_id}")
    return job


def check_fresh(job: update_job.UpdateJob, state: UpdateState, now_ms: int) -> None:
    """Refuse a replay (seq not above the last accepted, or a job id seen) or an expired job."""
    if job.seq <= state.seq:
        raise JobRefused(
            update_job.REPLAY, f"job {job.job} seq {job.seq} is not above {state.seq} (replay)"
        )
    if job.job in state.jobs:
        raise JobRefused(update_job.REPLAY, f"job {job.job} was run already (replay)")
    if job.expires_ms < now_ms:
        raise JobRefused(
            update_job.EXPIRED,
            f"job {job.job} expired {(now_ms - job.expires_ms) / 1000:.0f} s ago",
        )


def verify_manifest(
    data: bytes, job: update_job.UpdateJob, trusted: Mapping[str, bytes]
) -> tuple[str, dict[str, tuple[str, int]]]:
    """(wheel name, {path: (sha256, size)}) of the release manifest the job pins."""
    import hashlib

    if hashlib.sha256(data).hexdigest() != job.manifest_sha256:
        raise JobRefused(
            update_job.BUNDLE_CHECKSUM,
            f"the manifest served for {job.release} is not the one the job names (SHA-256)",
        )
    try:
        doc, _kid = verify_signed(data, update_job.CONTEXT_RELEASE, dict(trusted))
    except Refused as e:
        raise JobRefused(update_job.BUNDLE_INVALID, f"release manifest: {e.reason}") from e
    try:
        version, wheel, files = update_job.check_manifest(doc)
    except ProtocolError as e:
        raise JobRefused(update_job.BUNDLE_INVALID, f"release manifest: {e}") from e
    if version != job.release:
        raise JobRefused(
            update_job.BUNDLE_INVALID, f"the manifest is of {version}, the job of {job.release}"
        )
    return wheel, files


__all__ = ["check_fresh", "claimed", "verify_manifest", "verify_message"]
