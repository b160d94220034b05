"""`estran bench buffer`: the durable buffer on the reference workload, and ThingsBoard IoT
Gateway's own storages (the anchor) on the same workload, in the same run.

    estran bench buffer --readings N [--dir D] [--json] [--report-durable] [--no-anchor]

Appends the first N readings of ../shared/bench/workload.py into D (a fresh temporary
directory by default) with the default group commit (every 100 ms or 2,000 readings, each
commit an fdatasync), then drains them as the uplink does (read the stored blocks,
acknowledge them). Also measured: decoding the drained blocks back to readings (and
checking every one is exact: `lost` counts those that are not), reopening the buffer, and
recovering a synthetic buffer of --recover-mb MB (default 1024) whose last segment is left
unsealed as after a power cut, read cold (its pages dropped from the cache).

The anchor runs `anchor_tb_storage.py` in a venv of its own with thingsboard-gateway==3.8.5,
created on first use in $XDG_CACHE_HOME/estran/tb-venv (~/.cache/estran/tb-venv); when the
bench directory or the install is missing, the anchor is reported as skipped, with why.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import click

from edge.buffer import BufferConfig, SegmentLog
from edge.buffer._format import HEADER_LEN, frame, segment_header, segment_name
from edge.buffer._segment import Segment
from protocols import cbor
from protocols.block import decode_block, read_block_header
from protocols.reading import Reading

TB_VERSION = "3.8.5"


def bench_dir() -> Path | None:
    """../shared/bench beside the repository (or $ESTRAN_BENCH_DIR)."""
    candidates = [os.environ.get("ESTRAN_BENCH_DIR")]
    candidates.append(str(Path(__file__).resolve().parents[2] / "shared" / "bench"))
    candidates.append(str(Path.cwd().parent / "shared" / "bench"))
    for c in candidates:
        if c and (Path(c) / "workload.py").exists():
            return Path(c)
    return None


def load_workload(where: Path, n: int) -> list[Reading]:
    sys.path.insert(0, str(where))
    try:
        from workload import readings  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(where))
    return [Reading(r.sensor, r.quantity, r.unit, r.value, r.ts_ms) for r in readings(n)]


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def same(a: Reading, b: Reading) -> bool:
    return type(a.value) is type(b.value) and a == b


def say(msg: str) -> None:
    click.echo(msg, err=True)


# ---------------------------------------------------------------- ours


def run_ours(readings: list[Reading], directory: Path, report_durable: bool) -> dict[str, Any]:
    n = len(readings)
    # group commit every 100 ms or 2,000 readings: the figures of docs/benchmarks.md (the
    # gateway's own default, 10 s, is the flash policy's: `estran bench edge`'s flash part)
    config = BufferConfig(directory, quota_bytes=max(256 << 20, n * 256), commit_interval_s=0.1)
    log = SegmentLog.open(config)
    start_seq = log.next_seq
    t = time.perf_counter()
    if report_durable:
        reported = log.durable_seq
        step = 500
        for i in range(0, n, step):
            log.append_many(readings[i : i + step])
            if log.durable_seq > reported:
                reported = log.durable_seq
                print(f"durable {reported}", flush=True)
        log.commit()
        if log.durable_seq > reported:
            print(f"durable {log.durable_seq}", flush=True)
    else:
        log.append_many(readings)
        log.commit()
    t_append = time.perf_counter() - t
    size = du(directory)
    log.close()
    t = time.perf_counter()
    log = SegmentLog.open(config)
    t_reopen = time.perf_counter() - t
    # drain as the uplink does: read the stored blocks, acknowledge what was taken
    payloads: list[bytes] = []
    t = time.perf_counter()
    after = start_seq - 1
    while blocks := log.read_blocks(after, 20_000):
        for b in blocks:
            payloads.append(b.payload)
            if not b.has_alarm:
                after = max(after, b.last_seq)  # the bulk cursor; alarm blocks go by acks
        log.ack([(b.first_seq, b.last_seq) for b in blocks])
    t_drain = time.perf_counter() - t
    log.close()
    t = time.perf_counter()
    decoded: dict[int, Reading] = {}
    for p in payloads:
        first, rs = decode_block(p)
        for i, r in enumerate(rs):
            decoded[first + i] = r
    t_decode = time.perf_counter() - t
    exact = sum(
        1
        for k, r in enumerate(readings)
        if (d := decoded.get(start_seq + k)) is not None and same(d, r)
    )
    return {
        "append_per_s": round(n / t_append),
        "drain_per_s": round(n / t_drain),
        "bytes_per_reading": round(size / n, 2),
        "lost": n - exact,
        "decode_per_s": round(n / t_decode),
        "drain_and_decode_per_s": round(n / (t_drain + t_decode)),
        "reopen_s": round(t_reopen, 4),
        "bytes": size,
    }


# ---------------------------------------------------------------- recovery of a big buffer


def _resequence(payload: bytes, first_seq: int) -> bytes:
    """The same block with another first_seq (items 0 and 1 of the block array)."""
    _value, end = cbor.decode_item(payload, 2)
    return payload[:2] + cbor.encode_head(0, first_seq) + payload[end:]


def build_synthetic(directory: Path, payloads: list[bytes], target_bytes: int) -> tuple[int, int]:
    """Segments of 4 MiB made of the given blocks, renumbered, up to `target_bytes`; the last
    one left unsealed (as a power cut leaves it). Returns (bytes, readings)."""
    seg_dir = directory / "segments"
    seg_dir.mkdir(parents=True)
    seg_bytes = BufferConfig(directory).effective_segment_bytes
    seq = 1
    total = 0
    k = 0
    while total < target_bytes:
        path = seg_dir / segment_name(seq)
        seg = Segment(str(path), seq)
        parts = [segment_header(seq)]
        seg.size = HEADER_LEN
        while seg.size < seg_bytes - 20_000:
            data = _resequence(payloads[k % len(payloads)], seq)
            k += 1
            record = frame(data)
            seg.add_block(seg.size, len(record), read_block_header(data), {})
            seg.size += len(record)
            parts.append(record)
            seq = seg.last_seq + 1
        last = total + seg.size >= target_bytes
        if not last:
            parts.append(seg.seal_bytes())
        blob = b"".join(parts)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            os.write(fd, blob)
            os.fdatasync(fd)
            if hasattr(os, "posix_fadvise"):
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)  # read it cold
        finally:
            os.close(fd)
        total += len(blob)
    return total, seq - 1


def run_recovery(payloads: list[bytes], mb: int, parent: Path) -> dict[str, Any]:
    where = Path(tempfile.mkdtemp(prefix="estran-bench-recover-", dir=parent))
    try:
        size, count = build_synthetic(where, payloads, mb << 20)
        t = time.perf_counter()
        log = SegmentLog.open(
            BufferConfig(where, quota_bytes=max(size * 2, 256 << 20), commit_interval_s=0.1)
        )
        t_open = time.perf_counter() - t
        st = log.stats()
        log.close()
        assert st.depth == count, (st.depth, count)
        return {"recover_s": round(t_open, 3), "recover_bytes": size, "recover_readings": count}
    finally:
        shutil.rmtree(where, ignore_errors=True)


# ---------------------------------------------------------------- the anchor


def anchor_venv() -> tuple[Path | None, str]:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "estran" / "tb-venv"
    python = cache / "bin" / "python"
    probe = [str(python), "-c", "import thingsboard_gateway.storage.sqlite.sqlite_event_storage"]
    if python.exists() and subprocess.run(probe, capture_output=True, timeout=120).returncode == 0:
        return python, ""
    say(f"creating the anchor's venv in {cache} (thingsboard-gateway=={TB_VERSION}) ...")
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(cache)],
                check=True,
                capture_output=True,
                timeout=300,
            )
        r = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", f"thingsboard-gateway=={TB_VERSION}"],
            capture_output=True,
            text=True,
            timeout=1800,
        )
        if r.returncode != 0:
            return (
                None,
                f"pip install thingsboard-gateway=={TB_VERSION} failed: {r.stderr.strip()[-300:]}",
            )
        if subprocess.run(probe, capture_output=True, timeout=120).returncode != 0:
            return None, "thingsboard-gateway installed but does not import"
    except (OSError, subprocess.SubprocessError) as e:
        return None, f"cannot create the anchor's venv: {e}"
    return python, ""


def run_anchor(where: Path, n: int) -> tuple[list[dict[str, Any]], str | None]:
    script = where / "anchor_tb_storage.py"
    if not script.exists():
        return [], f"{script} not found"
    python, why = anchor_venv()
    if python is None:
        return [], why
    say(f"running the anchor (ThingsBoard IoT Gateway {TB_VERSION} file and SQLite storages) ...")
    try:
        r = subprocess.run(
            [str(python), str(script), str(n), "file", "sqlite"],
            capture_output=True,
            text=True,
            timeout=3600,
            cwd=tempfile.gettempdir(),
        )
    except subprocess.TimeoutExpired:
        return [], "the anchor ran for more than an hour"
    anchors = []
    for line in r.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if isinstance(d, dict) and "anchor" in d:
            anchors.append(
                {
                    "name": d["anchor"],
                    "append_per_s": d["append_per_s"],
                    "drain_per_s": d["drain_per_s"],
                    "bytes_per_reading": d["bytes_per_reading"],
                    "lost": d["lost"],
                }
            )
    if not anchors:
        return [], f"the anchor printed no result (exit {r.returncode}): {r.stderr.strip()[-300:]}"
    return anchors, None


# ---------------------------------------------------------------- the command


@click.command("buffer")
@click.option(
    "--readings",
    "n",
    type=click.IntRange(1),
    required=True,
    help="first N readings of the workload",
)
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), help="buffer directory"
)
@click.option("--json", "as_json", is_flag=True, help="last line: the figures as JSON")
@click.option(
    "--report-durable", is_flag=True, help="print `durable <seq>` each time a commit returns"
)
@click.option("--no-anchor", is_flag=True, help="skip ThingsBoard's storages")
@click.option(
    "--recover-mb",
    type=click.IntRange(0),
    default=1024,
    show_default=True,
    help="size of the synthetic buffer whose recovery is timed (0: skip)",
)
def bench_buffer(
    n: int,
    directory: Path | None,
    as_json: bool,
    report_durable: bool,
    no_anchor: bool,
    recover_mb: int,
) -> None:
    """The buffer on the reference workload: append, drain, bytes per reading, recovery;
    ThingsBoard IoT Gateway's storages side by side."""
    where = bench_dir()
    if where is None:
        raise click.ClickException(
            "the reference workload (../shared/bench/workload.py) is not here"
        )
    say(f"generating {n:,} readings of the reference workload ...")
    readings = load_workload(where, n)
    own_dir = directory is None
    target = (
        Path(tempfile.mkdtemp(prefix="estran-bench-buffer-")) if directory is None else directory
    )
    try:
        ours = run_ours(readings, target, report_durable)
        result: dict[str, Any] = {
            "readings": n,
            **{k: ours[k] for k in ("append_per_s", "drain_per_s", "bytes_per_reading", "lost")},
        }
        result.update({k: ours[k] for k in ("decode_per_s", "drain_and_decode_per_s", "reopen_s")})
        if recover_mb:
            say(f"building a {recover_mb} MB buffer to time its recovery ...")
            sample = _sample_payloads(readings)
            result.update(
                run_recovery(
                    sample,
                    recover_mb,
                    target.parent if not own_dir else Path(tempfile.gettempdir()),
                )
            )
    finally:
        if own_dir:
            shutil.rmtree(target, ignore_errors=True)
    anchors: list[dict[str, Any]] = []
    skipped: str | None = "--no-anchor"
    if not no_anchor:
        anchors, skipped = run_anchor(where, n)
    for a in anchors:
        a["ours_vs_anchor"] = {
            "append": round(result["append_per_s"] / max(a["append_per_s"], 1), 2),
            "drain": round(result["drain_per_s"] / max(a["drain_per_s"], 1), 2),
            "bytes": round(a["bytes_per_reading"] / max(result["bytes_per_reading"], 1e-9), 1),
        }
    result["anchors"] = anchors
    result["anchor_skipped"] = skipped
    result["commit"] = {"interval_s": 0.1, "readings": 2000, "sync": "fdatasync"}
    if as_json:
        print(json.dumps(result), flush=True)
    else:
        print(_table(result), flush=True)


def _sample_payloads(readings: list[Reading]) -> list[bytes]:
    from protocols.block import BlockEncoder

    enc = BlockEncoder()
    sample = readings[:200_000]
    return [enc.encode(1 + i, sample[i : i + 2000]) for i in range(0, len(sample), 2000)]


def _table(r: dict[str, Any]) -> str:
    lines = [
        f"estran buffer, {r['readings']:,} readings of the reference workload",
        f"  append   {r['append_per_s']:>12,} readings/s   (group commit: 100 ms or 2,000 readings, fdatasync)",
        f"  drain    {r['drain_per_s']:>12,} readings/s   (read stored blocks + acknowledge)",
        f"  decode   {r['decode_per_s']:>12,} readings/s   (blocks back to readings, checked exact)",
        f"  both     {r['drain_and_decode_per_s']:>12,} readings/s   (drain, then decode: what a hub-side reader pays)",
        f"  on disk  {r['bytes_per_reading']:>12} bytes/reading",
        f"  lost     {r['lost']:>12,}",
        f"  reopen   {r['reopen_s']:>12} s",
    ]
    if "recover_s" in r:
        lines.append(
            f"  recover  {r['recover_s']:>12} s for {r['recover_bytes'] / 2**30:.2f} GiB "
            f"({r['recover_readings']:,} readings, tail unsealed, cold cache)"
        )
    for a in r["anchors"]:
        v = a["ours_vs_anchor"]
        lines.append(f"{a['name']}")
        lines.append(f"  append   {a['append_per_s']:>12,} readings/s   (ours x{v['append']})")
        lines.append(f"  drain    {a['drain_per_s']:>12,} readings/s   (ours x{v['drain']})")
        lines.append(
            f"  on disk  {a['bytes_per_reading']:>12} bytes/reading (ours {v['bytes']}x smaller)"
        )
        lines.append(f"  lost     {a['lost']:>12,}")
    if r["anchor_skipped"]:
        lines.append(f"anchor skipped: {r['anchor_skipped']}")
    return "\n".join(lines)
