"""`python -m edge.update run JOB_DIR`: the job runner (started by the update agent, or by
the `estran-update@JOB` systemd unit). Not a technician's command."""

from __future__ import annotations

import sys
from pathlib import Path

from edge.update._runner import run_job


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "run":
        print("usage: python -m edge.update run JOB_DIR", file=sys.stderr)
        return 2
    return run_job(Path(argv[1]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
