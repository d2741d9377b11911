"""The benchmark suite: `make bench` (or `python -m benchmarks`).

Every case runs against the built-in simulator on loopback. Whatever is timed
or charged for CPU runs in a subprocess of its own, so one measurement never
pays for another's work (the simulator always has its own process too).
"""
