"""micropython-lib's `unittest.main()` on one vector module, on the MicroPython unix port.

usage: MICROPYPATH=<lib>:. micropython protocols/tests/mpy_main.py test_vectors_tic
(`make micropython` runs every `test_vectors_*` module this way.)

The only thing added to the library: micropython-unittest 0.4 ends `main()` with
`sys.exit(<bool>)`, which the port reports as status 1 even when every test passed; the
status is mapped back to 0/1 here.
"""

import sys
import unittest

module = __import__("protocols.tests." + sys.argv[1], None, None, ["*"])
try:
    unittest.main(module)
except SystemExit as e:
    sys.exit(1 if e.args and e.args[0] else 0)
