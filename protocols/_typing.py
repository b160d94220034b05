"""Type-checking names without a run-time `typing` import (MicroPython has none).

Use as::

    from protocols._typing import TYPE_CHECKING
    if TYPE_CHECKING:
        from typing import Iterator
"""

try:
    from typing import TYPE_CHECKING
except ImportError:  # MicroPython
    TYPE_CHECKING = False  # type: ignore[misc]

__all__ = ["TYPE_CHECKING"]
