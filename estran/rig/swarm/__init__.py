"""Simulated gateways by the hundred: each with its own identity (enrolled through the hub's
API), credentials, buffer (the real `edge.buffer` in its own directory) and MQTT sessions
(the real `edge.uplink` and fleet link), many on one asyncio loop, a few loops per swarm.

    hub = SwarmHub(workdir, db); await hub.start(); await hub.create_group("swarm")
    swarm = Swarm(workdir, 1000, workload=Workload(sensors=10, period_s=60, speed=6))
    await swarm.enroll(hub.url, hub.admin_token, "swarm"); await swarm.start()

docs/hil.md (Fleet scale) says what is real and what is simulated.
"""

from estran.rig.swarm._enroll import (
    bound_post,
    create_tokens,
    enroll_gateway,
    enroll_many,
    source_address,
)
from estran.rig.swarm._fleet import (
    FDS_PER_GATEWAY,
    TARGETS,
    FleetScale,
    loadavg,
    run_fleet,
)
from estran.rig.swarm._gateway import LAG_BUCKETS, AckTimer, SimGateway, SimTarget, Workload
from estran.rig.swarm._hub import SwarmHub, diff_buckets, histogram, quantile
from estran.rig.swarm._sample import (
    CpuMeter,
    ProcessSampler,
    Series,
    cmdline,
    cpu_seconds,
    descendants,
    dir_bytes,
    open_fds,
    rss_bytes,
    slope,
)
from estran.rig.swarm._swarm import Swarm
from estran.rig.swarm._worker import raise_fd_limit

__all__ = [
    "FDS_PER_GATEWAY",
    "LAG_BUCKETS",
    "TARGETS",
    "AckTimer",
    "CpuMeter",
    "FleetScale",
    "ProcessSampler",
    "Series",
    "SimGateway",
    "SimTarget",
    "Swarm",
    "SwarmHub",
    "Workload",
    "bound_post",
    "cmdline",
    "cpu_seconds",
    "create_tokens",
    "descendants",
    "diff_buckets",
    "dir_bytes",
    "enroll_gateway",
    "enroll_many",
    "histogram",
    "loadavg",
    "open_fds",
    "quantile",
    "raise_fd_limit",
    "rss_bytes",
    "run_fleet",
    "slope",
    "source_address",
]
