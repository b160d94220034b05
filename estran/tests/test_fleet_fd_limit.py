"""`estran bench fleet` says up front when the limit of open files cannot hold the run: a
storm that cannot hold every connection never ends (estran.rig.swarm.check_fd_limit)."""

from __future__ import annotations

import resource

import pytest

from estran.rig import RigError
from estran.rig.swarm._fleet import check_fd_limit


def test_mosquitto_needs_two_connections_per_gateway() -> None:
    with pytest.raises(RigError, match=r"Mosquitto needs 20064 .* at most 9968 gateways"):
        check_fd_limit(20000, 10000, 8)  # this machine: a hard limit of 20,000
    check_fd_limit(20000, 9900, 4)


def test_each_swarm_process_needs_room_for_its_gateways() -> None:
    with pytest.raises(RigError, match=r"use --swarm-processes 3 or more"):
        check_fd_limit(20000, 9900, 2)
    check_fd_limit(20000, 9900, 3)


def test_no_limit_no_check() -> None:
    check_fd_limit(resource.RLIM_INFINITY, 1_000_000, 1)
