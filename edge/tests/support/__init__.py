"""Helpers of the edge tests, not tests: pytest collects only `test_*.py`, and nothing here
is named so. One module per area: `buffer` and `memfs` (the buffer's tests: a crash and
fault-injecting in-memory file layer), `daemon` (scripted sources, an in-memory buffer),
`hub` (the hub's signing side, made without `fleet`), `ble` and `serial` (recording sinks,
a fast radio world), `runner` (the simulator runner and the `estran` command as a
technician runs them), `tls` (a throwaway CA), `uplink` (an in-memory log, an amqtt broker, a scripted hub).
No test module imports another: what two tests share lives here."""
