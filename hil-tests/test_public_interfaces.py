"""The rig tests are black-box: they reach Estran only through its public interfaces.

A test in hil-tests/ runs what a user runs (`estran hub run`, `estran edge run|enroll`,
`estran fleet ...`), talks HTTP and MQTT, and reads the files the docs name; what it needs
to do so (processes, ports, brokers, simulators, links, availability checks) comes from the
rig layer. So it may import:

- the standard library and third-party libraries (aiomqtt, httpx, cryptography, pytest...);
- `estran.rig` (and its submodules): the rig layer;
- `estran.rollout_lab`: the Ansible lab (gateway roots, sshd, wheelhouses) the update tests
  drive `ansible-playbook` against;
- `protocols` (and its submodules): the documented wire format, signed documents and jobs, as a
  peer or an attacker encodes them.

Nothing else of Estran: no `hub.*`, `edge.*`, `fleet.*`, no other `estran.*` (benchmarks,
test helpers of the packages). docs/hil.md ("Public interfaces") says why.
"""

from __future__ import annotations

import ast
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
FIRST_PARTY = {"protocols", "edge", "fleet", "hub", "estran", "playbooks"}
ALLOWED = ("estran.rig", "estran.rollout_lab", "protocols")

# Files not clean yet, each with the helper moving it onto public interfaces. No file may join
# this list; a file that became clean (or went away) is reported by a warning, not a failure,
# so that its owner's landing does not turn everyone's run red: take it out then.
NOT_YET_CLEAN: dict[str, str] = {}  # empty since session 4: every file is clean


def allowed(module: str) -> bool:
    top = module.split(".")[0]
    if top not in FIRST_PARTY:
        return True  # the standard library or a third-party library
    return any(module == a or module.startswith(a + ".") for a in ALLOWED)


def private_imports(path: Path) -> list[str]:
    """`file:line: module` for every import of `path` outside the public interfaces."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # hil-tests is not a package: a relative import cannot work
                modules = ["." * node.level + (node.module or "")]
            elif node.module is not None:
                # `from estran import bench_sync` imports estran.bench_sync
                base = node.module
                expand = base == "estran"
                modules = [f"{base}.{a.name}" for a in node.names] if expand else [base]
        elif isinstance(node, ast.Call) and _is_dynamic_import(node):
            arg = node.args[0] if node.args else None
            name = arg.value if isinstance(arg, ast.Constant) else "?"
            modules = [str(name)]
        for module in modules:
            if module.startswith(".") or not allowed(module):
                found.append((getattr(node, "lineno", 0), module))
    return [f"{path.name}:{line}: {module}" for line, module in sorted(found)]


def _is_dynamic_import(node: ast.Call) -> bool:
    """`importlib.import_module(...)` and `__import__(...)`."""
    f = node.func
    if isinstance(f, ast.Name):
        return f.id in ("__import__", "import_module")
    return isinstance(f, ast.Attribute) and f.attr == "import_module"


def rig_tests() -> list[Path]:
    """Every Python file of hil-tests/ (tests, conftest, helpers alike)."""
    return sorted(HERE.glob("*.py"))


def test_the_rig_tests_import_only_public_interfaces() -> None:
    bad: list[str] = []
    for path in rig_tests():
        if path.name in NOT_YET_CLEAN:
            continue
        bad += private_imports(path)
    assert not bad, (
        "hil-tests use only public interfaces (docs/hil.md): estran.rig, estran.rollout_lab, "
        "protocols, the standard library and third-party libraries. Found:\n  " + "\n  ".join(bad)
    )


def test_the_list_of_files_not_yet_clean_names_only_unclean_files() -> None:
    names = {p.name for p in rig_tests()}
    stale = sorted(n for n in NOT_YET_CLEAN if n not in names or not private_imports(HERE / n))
    if stale:
        warnings.warn(
            f"clean now (or gone): take {', '.join(stale)} out of NOT_YET_CLEAN in {__file__}",
            stacklevel=1,
        )


def test_the_guard_catches_what_it_must(tmp_path: Path) -> None:
    """The check itself can fail: each form of a private import is named with its line."""
    sample = tmp_path / "test_sample.py"
    sample.write_text(
        "import os\n"
        "import aiomqtt\n"
        "from estran.rig import Child\n"
        "from estran.rig._child import estran_argv\n"
        "from estran.rollout_lab import Lab\n"
        "from protocols import wire\n"
        "import protocols.signed\n"
        "import hub._broker\n"
        "from fleet import Fleet\n"
        "from estran import bench_sync\n"
        "from estran.tests.wheels import REPO\n"
        "def f():\n"
        "    from edge.identity import enroll\n"
        "    import importlib\n"
        "    importlib.import_module('hub.storage')\n"
        "from . import x\n"
    )
    assert private_imports(sample) == [
        "test_sample.py:8: hub._broker",
        "test_sample.py:9: fleet",
        "test_sample.py:10: estran.bench_sync",
        "test_sample.py:11: estran.tests.wheels",
        "test_sample.py:13: edge.identity",
        "test_sample.py:15: hub.storage",
        "test_sample.py:16: .",
    ]
