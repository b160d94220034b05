"""`estran bench rollout`: updating N real gateways on this machine (estran.rollout_lab).

Figures, in one run:
- `push.update_s`: a rollout of the release after it to every gateway in push mode (waves: 2
  test rigs, a 10% canary, the rest; batches of `--batch`), from start to the last gateway
  gated;
- `push.rollback_s`: a broken release (its uplink never connects) to a canary of 4: from the
  first failed health gate to every canary gateway back on N and gated again;
- `pull.update_s` (first, right after provisioning): a rollout of the next release to every
  gateway in pull mode (the same
  waves and batches: the hub signs one job per gateway and sends it on its `cmd` topic; each
  gateway fetches the bundle over HTTP and runs update.yml on itself), from start to the last
  gateway's `finished` report; the lab's gateways are enrolled by the gateway's own
  enrollment code, so their daemons run the fleet link and the update agent;
- the anchor, measured on the same gateways in the same run: a plain `ansible-playbook` of a
  naive in-place `pip install --upgrade` and restart (estran/bench_rollout_naive.yml: no
  release side by side, no self-check, no gate, no rollback).

Provisioning is timed as well (not a figure of the rollout). The load average is reported
beside the figures: on a shared machine they vary with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from estran.rollout_lab import PLAYBOOKS, Lab, lab
from fleet import Fleet

V1, V2, BROKEN, V3, V4 = "1.0.0", "1.0.1", "1.0.2", "1.0.3", "1.0.4"
BREAK_UPLINK = {
    "edge/uplink/_uplink.py": (
        "            self.broker.port,\n            identifier",
        "            1,\n            identifier",
    )
}
NAIVE = Path(__file__).with_name("bench_rollout_naive.yml")


def _load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


async def _rollout(the_lab: Lab, *args: str) -> dict[str, Any]:
    rc, out, err = await the_lab.fleet_cli("rollout", "start", *args, "--json", timeout=3600)
    if not out.strip():
        raise click.ClickException(f"rollout start exited {rc}: {err[-2000:]}")
    value = json.loads(out)
    assert isinstance(value, dict)
    return value


async def _run(gateways: int, batch: int, work: Path) -> dict[str, Any]:
    from estran.tests.wheels import built_wheels

    t0 = time.monotonic()
    built, house = built_wheels(
        [(V1, None), (V2, None), (BROKEN, BREAK_UPLINK), (V3, None), (V4, None)]
    )
    result: dict[str, Any] = {
        "gateways": gateways,
        "batch": batch,
        "load_before": _load(),
        "wheels_s": round(time.monotonic() - t0, 1),
    }
    async with lab(
        work, gateways=gateways, rigs=2, over_ssh=3,
        wheels={v: built[v] for v in (V1, V2, V3, BROKEN)}, wheelhouse=house, gate_timeout=60,
        identities=True,
    ) as the_lab:  # fmt: skip
        run = await the_lab.playbook("provision.yml", the_lab.release_vars(V1), forks=gateways)
        if run.rc != 0:
            raise click.ClickException("provision failed:\n" + run.output[-3000:])
        result["provision_s"] = round(run.seconds, 1)

        # pull: the next release to every gateway, the same waves, in pull mode (first: the
        # daemons run as provisioned, their fleet links connected)
        r = await _rollout(
            the_lab, V2, "--rigs", "group:rigs", "--canary", "10%", "--batch", str(batch),
            "--mode", "pull", "--hub-url", the_lab.hub_url,
        )  # fmt: skip
        result["pull"] = {
            "state": r["state"],
            "reason": r["reason"],
            "update_s": round((r["finished_ms"] - r["started_ms"]) / 1000, 1),
            "waves": {w["name"]: len(w["gateways"]) for w in r["waves"]},
            "counts": {k: v for k, v in r["counts"].items() if v},
            "load": _load(),
        }
        # what `current` names (the rollout's gate checked each daemon; 20 `edge status` at
        # once outlast their timeout on a loaded machine)
        result["pull"]["on_v2"] = sum(1 for g in the_lab.gateways if g.version() == V2)
        (work / "partial.json").write_text(json.dumps(result, indent=2))  # a later phase may fail

        # push: the next release to every gateway, in waves
        r = await _rollout(
            the_lab, V3, "--rigs", "group:rigs", "--canary", "10%", "--batch", str(batch)
        )
        if r["state"] != "done":
            raise click.ClickException(f"the push rollout ended {r['state']}: {r['reason']}")
        result["push"] = {
            "update_s": round((r["finished_ms"] - r["started_ms"]) / 1000, 1),
            "waves": {w["name"]: len(w["gateways"]) for w in r["waves"]},
            "counts": {k: v for k, v in r["counts"].items() if v},
            "load": _load(),
        }
        (work / "partial.json").write_text(json.dumps(result, indent=2))

        # push: a broken release stopped at its canary; every canary back on N
        with Fleet(the_lab.hub_data) as f:
            f.set_hostvars("fleet", None, {"estran_gate_timeout": 20}, "bench")
        r = await _rollout(the_lab, BROKEN, "--canary", "4", "--batch", str(batch))
        canary = [g["gateway"] for w in r["waves"] if w["name"] == "canary" for g in w["gateways"]]
        with Fleet(the_lab.hub_data) as f:
            entries = [
                e for e in f.audit(action="rollout.gateway", limit=1000)
                if e.detail.get("rollout") == r["id"]
            ]  # fmt: skip
        failed = [int(str(e.detail["failed_ms"])) for e in entries if e.detail.get("failed_ms")]
        back = [int(str(e.detail["finished_ms"])) for e in entries]
        rolled = [e.target for e in entries if e.detail.get("state") == "rolled_back"]
        result["push"]["rollback"] = {
            "state": r["state"],
            "canary": len(canary),
            "rolled_back": len(rolled),
            "gate_failed_to_all_back_on_n_s": (
                round((max(back) - min(failed)) / 1000, 1) if failed and back else None
            ),
            "rollout_s": round((r["finished_ms"] - r["started_ms"]) / 1000, 1),
            "gate_timeout_s": 20,
            "load": _load(),
        }

        # the anchor: a naive in-place pip upgrade with a plain ansible-playbook
        naive = await the_lab.playbook_file(
            NAIVE, {"estran_wheel_src": str(built[V4])}, forks=gateways
        )
        if naive.rc != 0:
            raise click.ClickException("the naive upgrade failed:\n" + naive.output[-3000:])
        result["anchor_naive_pip_upgrade"] = {
            "update_s": round(naive.seconds, 1),
            "forks": gateways,
            "what": "ansible-playbook: pip install --upgrade in place + restart; no A/B, no"
            " gate, no rollback",
            "load": _load(),
        }
        statuses = {}
        for g in the_lab.gateways:  # one at a time: the anchor has no gate, ask each daemon
            with contextlib.suppress(TimeoutError, OSError):
                statuses[g.name] = await g.status()
        result["anchor_naive_pip_upgrade"]["running_v4"] = sum(
            1 for s in statuses.values() if s is not None and s.get("software") == V4
        )
    result["load_after"] = _load()
    result["playbooks"] = str(PLAYBOOKS)
    return result


@click.command("rollout")
@click.option("--gateways", type=click.IntRange(3, 200), default=20, show_default=True)
@click.option("--batch", type=click.IntRange(1, 200), default=10, show_default=True)
@click.option("--work", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Keep the gateways' roots and logs here (default: a temporary directory).")  # fmt: skip
@click.option("--json", "as_json", is_flag=True)
def bench_rollout(gateways: int, batch: int, work: Path | None, as_json: bool) -> None:
    """Update N real gateways in push mode and in pull mode, the rollback of a broken canary,
    beside a naive in-place pip upgrade run by plain ansible-playbook."""
    if work is None:
        with tempfile.TemporaryDirectory(prefix="estran-bench-rollout-") as tmp:
            result = asyncio.run(_run(gateways, batch, Path(tmp) / "lab"))
    else:
        result = asyncio.run(_run(gateways, batch, work))
        (work / "result.json").write_text(json.dumps(result, indent=2))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    push = result["push"]
    click.echo(f"{gateways} gateways, batches of {batch} (load {result['load_before']})")
    click.echo(f"  provision                 {result['provision_s']:>7.1f} s")
    click.echo(f"  push rollout              {push['update_s']:>7.1f} s  {push['waves']}")
    rb = push["rollback"]
    click.echo(f"  failed gate -> canary on N {rb['gate_failed_to_all_back_on_n_s']} s"
               f" ({rb['rolled_back']}/{rb['canary']} rolled back)")  # fmt: skip
    pull = result["pull"]
    click.echo(f"  pull rollout              {pull['update_s']:>7.1f} s  {pull['waves']}")
    click.echo(
        f"  anchor: naive pip upgrade {result['anchor_naive_pip_upgrade']['update_s']:>7.1f} s"
    )


__all__ = ["bench_rollout"]
