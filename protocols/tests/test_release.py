"""Release manifests (protocols.release): shape checks a gateway relies on before it
downloads anything."""

from __future__ import annotations

import pytest

from protocols.errors import RemoteProtocolError
from protocols.release import check_manifest, valid_path, valid_version

DIGEST = "ab" * 32


def manifest(**changes: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "kind": "release",
        "version": "1.0.1",
        "created_ms": 1,
        "source": "",
        "wheel": "estran-1.0.1-py3-none-any.whl",
        "files": {
            "estran-1.0.1-py3-none-any.whl": {"sha256": DIGEST, "size": 10},
            "playbooks/update.yml": {"sha256": DIGEST, "size": 3},
        },
    }
    doc.update(changes)
    return doc


def test_a_good_manifest_passes() -> None:
    assert check_manifest(manifest())["version"] == "1.0.1"


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"kind": "config"}, "not a release"),
        ({"version": "../etc"}, "version"),
        ({"version": ""}, "version"),
        ({"created_ms": "now"}, "created_ms"),
        ({"files": {}}, "1 to"),
        ({"files": {"/etc/passwd": {"sha256": DIGEST, "size": 1}}}, "file name"),
        ({"files": {"a/../b": {"sha256": DIGEST, "size": 1}}}, "file name"),
        ({"files": {"estran-1.0.1-py3-none-any.whl": {"sha256": "x", "size": 1}}}, "sha256"),
        ({"files": {"estran-1.0.1-py3-none-any.whl": {"sha256": DIGEST, "size": -1}}}, "size"),
        ({"wheel": "other.whl"}, "not in its files"),
    ],
)
def test_a_wrong_manifest_is_refused_with_its_reason(changes: dict[str, object], says: str) -> None:
    with pytest.raises(RemoteProtocolError, match=says):
        check_manifest(manifest(**changes))


def test_versions_and_paths() -> None:
    assert valid_version("1.0.1") and valid_version("2.0.0rc1+local")
    assert not any(valid_version(v) for v in ("", ".1", "1/2", "1..2", "a" * 65, 1))
    assert valid_path("playbooks/roles/estran/tasks/main.yml")
    assert not any(valid_path(p) for p in ("", "/a", "a//b", "./a", "a/..", "a\\b"))
