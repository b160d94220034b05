"""The composition root: the `estran` command, the demo and the benchmarks.

The only package allowed to import all the others (protocols, edge, fleet, hub); nothing
imports it. Keeping the CLI here lets `edge` and `hub` stay ignorant of each other.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
