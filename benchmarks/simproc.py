"""The simulator in a process of its own: prints its URL and record ids, serves until stdin closes.

Every build is under way when it starts (none finishes for minutes at the default
duration scale), so the daemon keeps polling every record for the whole run.
"""

from __future__ import annotations

import argparse
import json
import random
import sys

import anyio

from benchmarks.common import BENCH_TOKEN
from monitor.simulator import SimClock, Simulator, serve


async def _main(args: argparse.Namespace) -> None:
    sim = Simulator(
        seed=args.seed,
        tokens={BENCH_TOKEN},
        clock=SimClock(speed=args.speed),
        accept_any_auth=args.accept_any_auth,
    )
    sim.requests = sim.requests.__class__(maxlen=1)  # the log is not read here; keep it small
    rng = random.Random(args.seed)
    # --finished: builds long over (the history case adds records that are done).
    ago = 1e6 if args.finished else 5 * args.duration_scale
    ids = [
        sim.new_build(
            started_ago=rng.uniform(0.999, 1.0) * ago if args.finished else rng.uniform(0, ago),
            duration_scale=args.duration_scale,
            fate="SUCCESS",
        ).record_id
        for _ in range(args.records)
    ]
    runner, port = await serve(sim, "127.0.0.1", 0)
    try:
        print(json.dumps({"url": f"http://127.0.0.1:{port}", "records": ids}), flush=True)
        await anyio.to_thread.run_sync(sys.stdin.read)  # until the benchmark closes our stdin
    finally:
        with anyio.CancelScope(shield=True):
            await runner.cleanup()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--records", type=int, required=True)
    p.add_argument("--speed", type=float, default=1.0)
    p.add_argument("--duration-scale", type=float, default=20.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--accept-any-auth", action="store_true")
    p.add_argument("--finished", action="store_true", help="every build is over")
    anyio.run(_main, p.parse_args())


if __name__ == "__main__":
    main()
