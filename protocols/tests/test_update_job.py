"""Pull-mode update jobs, release manifests and step reports: shapes, round trips, hostile maps."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols import signed, update_job
from protocols.errors import LocalProtocolError, RemoteProtocolError

SHA = "ab" * 32


def job(**changes: object) -> update_job.UpdateJob:
    fields: dict[str, object] = {
        "gateway": "gw-017",
        "job": "r3-gw-017",
        "seq": 7,
        "nonce": bytes(range(16)),
        "issued_ms": 1_000,
        "expires_ms": 61_000,
        "release": "1.0.1",
        "manifest_url": "https://hub.example/api/v1/releases/1.0.1/manifest",
        "files_url": "https://hub.example/api/v1/releases/1.0.1/files/",
        "manifest_sha256": SHA,
    }
    fields.update(changes)
    return update_job.UpdateJob(**fields)  # type: ignore[arg-type]


def test_job_round_trip_through_signed_framing() -> None:
    j = job()
    payload = j.payload()
    body = signed.encode_signed(signed.Signed(payload, [("0" * 16, b"\x00" * 64)]))
    assert update_job.is_update_job(body)
    back = update_job.check_job(signed.decode_signed(body).document())
    assert back.document() == j.document()
    assert (back.job, back.seq, back.gateway, back.release) == ("r3-gw-017", 7, "gw-017", "1.0.1")


def test_a_command_is_not_an_update_job() -> None:
    payload = signed.encode_payload({"kind": "cmd", "gateway": "gw", "seq": 1, "name": "reload"})
    body = signed.encode_signed(signed.Signed(payload, [("0" * 16, b"\x00" * 64)]))
    assert not update_job.is_update_job(body)
    assert not update_job.is_update_job(b"\xff garbage")


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "cmd"},
        {"gateway": ""},
        {"job": "../etc"},
        {"job": "a/b"},
        {"seq": -1},
        {"seq": True},
        {"nonce": b"short"},
        {"expires_ms": 1_000},  # not after issued
        {"release": 1},
        {
            "bundle": {
                "manifest_url": "file:///etc/passwd",
                "files_url": "https://h/",
                "manifest_sha256": SHA,
            }
        },
        {
            "bundle": {
                "manifest_url": "https://h/m",
                "files_url": "https://h/f",
                "manifest_sha256": SHA,
            }
        },
        {
            "bundle": {
                "manifest_url": "https://h/m",
                "files_url": "https://h/",
                "manifest_sha256": "AB" * 32,
            }
        },
        {"bundle": "https://h/"},
    ],
)
def test_malformed_jobs_are_refused_with_a_reason(change: dict[str, object]) -> None:
    doc = job().document() | change
    with pytest.raises(RemoteProtocolError):
        update_job.check_job(doc)


def test_builder_refuses_a_job_the_gateway_would_refuse() -> None:
    with pytest.raises(RemoteProtocolError):
        job(job="no/slash").payload()


def test_manifest_paths_stay_inside_the_bundle() -> None:
    good = {
        "kind": "release",
        "version": "1.0.1",
        "wheel": "estran-1.0.1-py3-none-any.whl",
        "files": {
            "estran-1.0.1-py3-none-any.whl": {"sha256": SHA, "size": 10},
            "playbooks/update.yml": {"sha256": SHA, "size": 3},
        },
    }
    version, wheel, files = update_job.check_manifest(good)
    assert (version, wheel) == ("1.0.1", "estran-1.0.1-py3-none-any.whl")
    assert files["playbooks/update.yml"] == (SHA, 3)
    for bad_path in ("../x", "/etc/passwd", "a//b", "a/./b", "a\\b", ""):
        bad = dict(good, files={**good["files"], bad_path: {"sha256": SHA, "size": 1}})  # type: ignore[dict-item]
        with pytest.raises(RemoteProtocolError):
            update_job.check_manifest(bad)
    with pytest.raises(RemoteProtocolError):  # the wheel must be listed
        update_job.check_manifest(dict(good, wheel="other.whl"))
    with pytest.raises(RemoteProtocolError):
        update_job.check_manifest(dict(good, kind="config"))


def test_reports_round_trip_and_are_checked() -> None:
    doc = update_job.report(
        "r3-gw-017", 7, 1, update_job.RECEIVED, update_job.RUNNING, "ok", "1.0.1", 5
    )
    assert update_job.check_report(doc) is doc
    refused = update_job.report(
        None, None, 1, update_job.FINISHED, update_job.REFUSED, "x" * 1000, None, 5,
        code=update_job.REPLAY,
    )  # fmt: skip
    assert len(str(refused["reason"])) == update_job.MAX_REASON
    update_job.check_report(refused)
    with pytest.raises(LocalProtocolError):
        update_job.report("j", 1, 1, "nap", update_job.RUNNING, "", None, 5)
    with pytest.raises(LocalProtocolError):
        update_job.report(
            "j", 1, 1, update_job.FINISHED, update_job.REFUSED, "", None, 5, code="why"
        )
    for change in (
        {"n": 0},
        {"step": "x"},
        {"outcome": "x"},
        {"code": "x"},
        {"job": "../"},
        {"kind": "cmd"},
    ):
        with pytest.raises(RemoteProtocolError):
            update_job.check_report(doc | change)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            ["kind", "gateway", "job", "seq", "nonce", "issued_ms", "expires_ms", "release",
             "bundle", "n", "step", "outcome", "code", "reason", "ts_ms", "files", "wheel",
             "version"]
        ),
        st.none() | st.booleans() | st.integers(-5, 2**64) | st.text(max_size=70)
        | st.binary(max_size=20) | st.dictionaries(st.text(max_size=12), st.text(max_size=70), max_size=3),
        max_size=18,
    )
)  # fmt: skip
def test_hostile_maps_only_raise_the_protocol_error(doc: dict[str, object]) -> None:
    for check in (update_job.check_job, update_job.check_report, update_job.check_manifest):
        with contextlib.suppress(RemoteProtocolError):
            check(doc)
