"""Run the codec vector tests (`test_vectors_*.py`) on the MicroPython unix port.

usage: micropython protocols/tests/mpy_run.py   (from the repository root)

Prints one line per test and a closing `N passed, N failed, N skipped`; exits 1 on failure.
"""

import os
import sys

sys.path.insert(0, ".")

failed = 0
passed = 0
skipped = 0
modules = [
    n[:-3]
    for n in sorted(os.listdir("protocols/tests"))
    if n.startswith("test_vectors_") and n.endswith(".py")
]
if not modules:
    print("no vector test modules found")
    sys.exit(1)
for name in modules:
    module = __import__("protocols.tests." + name, None, None, ["*"])
    for attr in sorted(dir(module)):
        if not attr.startswith("test_"):
            continue
        fn = getattr(module, attr)
        try:
            fn()
        except Exception as e:
            if type(e).__name__ == "Skipped":
                skipped += 1
                print("SKIP", name, attr, e)
                continue
            failed += 1
            print("FAIL", name, attr, repr(e))
            sys.print_exception(e)
        else:
            passed += 1
            print("ok  ", name, attr)
print("micropython: %d passed, %d failed, %d skipped" % (passed, failed, skipped))
sys.exit(1 if failed or not passed else 0)
