"""The errors of hub/: one root, a few leaves named for what happened."""


class HubError(Exception):
    """Root of every error raised by hub/."""


class StorageError(HubError):
    """The database refused or failed an operation (down, full, misconfigured)."""


class ConfigError(HubError):
    """A hub setting is invalid (an unknown --db or --broker form)."""


__all__ = ["ConfigError", "HubError", "StorageError"]
