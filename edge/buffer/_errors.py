"""The errors of edge.buffer: one root, each named for what happened."""

import errno as _errno

from edge.errors import EdgeError


class BufferFailure(EdgeError):
    """Root of every error the buffer raises."""


class BufferFull(BufferFailure):
    """The quota is reached and the policy is refuse_new: the reading was not accepted.

    `accepted`: how many readings of this call were accepted before (append_many)."""

    def __init__(self, message: str, accepted: int = 0) -> None:
        super().__init__(message)
        self.accepted = accepted


class BufferDiskError(BufferFailure):
    """The disk failed (ENOSPC, EIO, EROFS, ...). The buffer stays consistent: what was
    committed is kept, readings accepted but not committed stay in memory (bounded) and
    are written by the next commit that succeeds. `errno` is the OS error number;
    `accepted` as for BufferFull."""

    def __init__(self, message: str, errno: int | None, accepted: int = 0) -> None:
        super().__init__(message)
        self.errno = errno
        self.accepted = accepted

    @property
    def no_space(self) -> bool:
        return self.errno in (_errno.ENOSPC, _errno.EDQUOT)

    @property
    def read_only(self) -> bool:
        return self.errno == _errno.EROFS


class BufferLocked(BufferFailure):
    """Another process has this buffer open for writing."""


class BufferClosed(BufferFailure):
    """The log was closed (or opened read-only) and cannot take this call."""


__all__ = ["BufferClosed", "BufferDiskError", "BufferFailure", "BufferFull", "BufferLocked"]
