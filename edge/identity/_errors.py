"""Errors of the gateway identity and enrollment."""

from __future__ import annotations

from edge.errors import EdgeError


class IdentityError(EdgeError):
    """The gateway identity or its state file cannot be used."""


class EnrollError(IdentityError):
    """Enrollment failed; the message says why and what to do."""


__all__ = ["EnrollError", "IdentityError"]
