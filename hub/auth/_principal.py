"""Who is asking: the value every endpoint decides on."""

from __future__ import annotations

from dataclasses import dataclass, field

ROLE_ORDER = ("anonymous", "reader", "technician", "admin")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    """`user` None is anonymous. `datasets`: the closed datasets granted (an admin reads
    every dataset whatever this says); `groups`: the fleet groups a technician commands;
    `scopes`: what the credential may do (`read`: safe methods, `write`: the others)."""

    user: str | None
    role: str  # "admin" | "technician" | "reader" | "anonymous"
    datasets: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset({"read"})
    token_id: str | None = None  # the API token used (None: session or anonymous)
    session: str | None = field(default=None, repr=False)  # the browser session's secret

    @property
    def authenticated(self) -> bool:
        return self.user is not None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def granted(self) -> frozenset[str] | None:
        """What the storage's filters take (`sensors(granted=...)`,
        `sensor_catalogue(granted=...)`): None for an admin (everything), otherwise the
        closed datasets granted (open ones are always in)."""
        return None if self.role == "admin" else self.datasets

    def can_read(self, dataset: str | None, is_open: bool) -> bool:
        """Open datasets: everyone. Closed ones: an admin, or a user granted that dataset.
        A sensor in no dataset (`dataset` None) is closed: admin only."""
        if self.role == "admin":
            return True
        if dataset is None:
            return False
        return is_open or dataset in self.datasets

    def can_command(self, group: str) -> bool:
        """Commands to a gateway of `group`: an admin, or a technician of that group."""
        return self.role == "admin" or (self.role == "technician" and group in self.groups)


ANONYMOUS = Principal(None, "anonymous")

__all__ = ["ANONYMOUS", "ROLE_ORDER", "SAFE_METHODS", "Principal"]
