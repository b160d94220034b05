"""What the update agent keeps between runs, in `<data>/update/state.json` (written
atomically, readable by a technician):

- `seq`: the highest job sequence accepted (a job at or below it is a replay);
- `jobs`: the last job ids accepted (a job id seen again is a replay, whatever its seq);
- `refused`: refusals counted by code (`protocols.update_job.REFUSALS`);
- `published`: per job, the number of its reports the hub has been sent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from edge.identity import atomic_write

STATE_NAME = "state.json"
KEEP_JOBS = 32


@dataclass(slots=True)
class UpdateState:
    seq: int = 0
    jobs: list[str] = field(default_factory=list)
    refused: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)

    @classmethod
    def load(cls, directory: Path) -> UpdateState:
        try:
            raw = json.loads((directory / STATE_NAME).read_text())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as e:  # never half-written; a hand edit gone wrong
            raise ValueError(f"{directory / STATE_NAME}: {e}") from e
        return cls(
            seq=int(raw.get("seq", 0)),
            jobs=[str(j) for j in raw.get("jobs", [])][-KEEP_JOBS:],
            refused={str(k): int(v) for k, v in raw.get("refused", {}).items()},
            published={str(k): int(v) for k, v in raw.get("published", {}).items()},
        )

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        keep = set(self.jobs[-KEEP_JOBS:])
        doc = {
            "seq": self.seq,
            "jobs": self.jobs[-KEEP_JOBS:],
            "refused": dict(sorted(self.refused.items())),
            "published": {k: v for k, v in self.published.items() if k in keep},
        }
        atomic_write(directory / STATE_NAME, (json.dumps(doc, indent=2) + "\n").encode(), 0o640)


__all__ = ["KEEP_JOBS", "STATE_NAME", "UpdateState"]
