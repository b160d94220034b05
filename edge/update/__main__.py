"""`python -m edge.update run JOB_DIR`: the job runner (started by the update agent, or by
the `estran-update@JOB` systemd unit). Not a technician's command.

`python -m edge.update trust --data DATA --out FILE [--keys JSON]`: write root's copy of the
hub keys the runner trusts (provision.yml runs it as root; edge/update/_trust.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.update._runner import run_job
from edge.update._trust import parse_keys, write_trusted_keys


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "run":
        return run_job(Path(argv[1]))
    if argv[:1] == ["trust"]:
        parser = argparse.ArgumentParser(prog="python -m edge.update trust")
        parser.add_argument("--data", type=Path, required=True)
        parser.add_argument("--out", type=Path, required=True)
        parser.add_argument("--keys", default="", help='{"keys": {id: base64}}; "" or {}: none')
        args = parser.parse_args(argv[1:])
        given = None
        if args.keys.strip() not in ("", "{}", "null"):
            try:
                given = parse_keys(json.loads(args.keys))
            except ValueError as e:
                print(f"estran_hub_keys: {e}", file=sys.stderr)
                return 2
        print(write_trusted_keys(args.out, args.data, given))
        return 0
    print(
        "usage: python -m edge.update run JOB_DIR\n"
        "       python -m edge.update trust --data DATA --out FILE [--keys JSON]",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
