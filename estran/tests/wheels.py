"""Wheels of this repository for tests: `estran.rollout_lab` makes them (built once per
source tree and kept, the other versions derived from that build); this module names them
for the package tests (test_packaging)."""

from __future__ import annotations

from estran.rollout_lab import REPO, build_wheel, built_wheels, wheelhouse

__all__ = ["REPO", "build_wheel", "built_wheels", "wheelhouse"]
