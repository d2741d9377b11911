"""The `stage-monitor` command: run, simulate, demo, check-config, watch."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import anyio

from monitor import __version__
from monitor.domain.ids import is_valid_record_id
from monitor.logging import configure_logging, get_logger
from monitor.settings import ConfigError, Settings, load_settings

if TYPE_CHECKING:
    from monitor.app import Daemon

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stage-monitor",
        description="Prometheus metrics and structured logs for CodeArts Build stages.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    p.add_argument("--config", metavar="PATH", help="TOML settings file (or MONITOR_CONFIG)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("run", help="run the daemon")
    sub.add_parser("check-config", help="print the effective settings, secrets masked")

    w = sub.add_parser("watch", help="follow records until they finish; exit 0 if all succeeded")
    w.add_argument("record_ids", nargs="+", metavar="RECORD_ID")

    s = sub.add_parser("simulate", help="serve a simulated CodeArts Build API")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=9631)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--records", type=int, default=12, help="builds to create at start")
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second")
    s.add_argument(
        "--duration-scale",
        type=float,
        default=1.0,
        help="multiply every stage's pending and run time",
    )
    s.add_argument("--token", help="the token to accept (default: a random one, printed)")
    s.add_argument("--fault-rate", type=float, default=0.0, help="share of answers that fail")
    s.add_argument("--jobs", type=int, default=0, help="build jobs to create (for MONITOR_JOBS)")
    s.add_argument(
        "--projects", type=int, default=0, help="CodeArts projects to create (MONITOR_PROJECTS)"
    )
    s.add_argument("--jobs-per-project", type=int, default=20, help="build jobs in each project")
    s.add_argument(
        "--build-every",
        type=float,
        default=120.0,
        help="simulated seconds between two builds of each job",
    )
    s.add_argument(
        "--iam-user",
        action="append",
        default=[],
        metavar="DOMAIN:USER:PASSWORD",
        help="an IAM user that POST /v3/auth/tokens accepts (repeatable)",
    )
    s.add_argument(
        "--aksk",
        action="append",
        default=[],
        metavar="AK:SK",
        help="an access key pair the gateway accepts (repeatable)",
    )

    d = sub.add_parser("demo", help="the simulator and the daemon in one process")
    d.add_argument("--port", type=int, default=9630, help="the daemon's port")
    d.add_argument("--records", type=int, default=12)
    d.add_argument("--seed", type=int, default=1)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    command: str = args.command
    try:
        if command == "check-config":
            return _check_config(args)
        if command == "run":
            return _run(args)
        if command == "watch":
            return _watch(args)
        if command == "simulate":
            return _simulate(args)
        if command == "demo":
            return _demo(args)
    except KeyboardInterrupt:
        return EXIT_OK
    return EXIT_USAGE


def _load(args: argparse.Namespace, **overrides: Any) -> Settings | None:
    try:
        return load_settings(args.config, **overrides)
    except ConfigError as exc:
        print("configuration is not valid:", file=sys.stderr)
        for err in exc.errors:
            print(f"  - {err}", file=sys.stderr)
        return None


def _check_config(args: argparse.Namespace) -> int:
    settings = _load(args)
    if settings is None:
        return EXIT_USAGE
    print(json.dumps(settings.masked(), indent=2, sort_keys=True, default=str))
    return EXIT_OK


async def _until_signal(scope: anyio.CancelScope) -> None:
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            get_logger("monitor").info("shutdown_requested", signal=signal.Signals(signum).name)
            scope.cancel()
            return


async def _stop_on_signal(daemon: Daemon, scope: anyio.CancelScope) -> None:
    """The first SIGTERM/SIGINT shuts down gracefully; a second one stops at once."""
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not daemon.stopping:
                get_logger("monitor").info("shutdown_requested", signal=name)
                daemon.stop()
            else:
                get_logger("monitor").warning("shutdown_forced", signal=name)
                scope.cancel()
                return


def _run(args: argparse.Namespace) -> int:
    settings = _load(args)
    if settings is None:
        return EXIT_USAGE
    configure_logging(settings.log_format, settings.log_level)
    from monitor.app import Daemon
    from monitor.codearts.client import IncompatibleAiohttp
    from monitor.store import StoreError

    async def main_async() -> None:
        daemon = Daemon(settings)
        async with anyio.create_task_group() as tg:
            tg.start_soon(_stop_on_signal, daemon, tg.cancel_scope)
            await daemon.run()
            tg.cancel_scope.cancel()

    failure: BaseException | None = None
    try:
        anyio.run(main_async)
    except* StoreError as group:  # a state file that cannot be used: say which and why
        failure = _leaf(group)
    except* IncompatibleAiohttp as group:  # an aiohttp that lost what the client relies on
        failure = _leaf(group)
    if failure is not None:
        get_logger("monitor").error("startup_failed", error=str(failure))
        print(f"stage-monitor: {failure}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _leaf(exc: BaseException) -> BaseException:
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


def _watch(args: argparse.Namespace) -> int:
    bad = [r for r in args.record_ids if not is_valid_record_id(r)]
    if bad:
        for r in bad:
            print(
                f"stage-monitor watch: {r!r} is not a record id (36 characters of [0-9a-z-])",
                file=sys.stderr,
            )
        return EXIT_USAGE
    # A one-off command keeps no state, and must not touch the daemon's state file.
    settings = _load(
        args,
        records=list(dict.fromkeys(args.record_ids)),
        watchlist_file=None,
        state_path=":memory:",
        jobs=[],
    )
    if settings is None:
        return EXIT_USAGE
    configure_logging("console", "warning", stream=sys.stderr)
    from monitor.app import Daemon
    from monitor.domain import RecordState
    from monitor.tracking.tracker import RecordCompleted, Transition
    from monitor.tracking.watchlist import WatchlistEvent

    def show(event: WatchlistEvent) -> None:
        ts = datetime.now().strftime("%H:%M:%S")
        if isinstance(event, Transition):
            took = f"  {event.duration_seconds:.1f}s" if event.duration_seconds is not None else ""
            waited = f" (waited {event.pending_seconds:.1f}s)" if event.pending_seconds else ""
            print(
                f"{ts} {event.record_id[:8]} {event.build_stage:<8} {event.display_name:<24} "
                f"{event.from_status or '-':>9} -> {event.to_status}{took}{waited}",
                flush=True,
            )
        elif isinstance(event, RecordCompleted):
            took = (
                f" in {event.duration_seconds:.1f}s" if event.duration_seconds is not None else ""
            )
            print(f"{ts} {event.record_id} finished: {event.result}{took}", flush=True)

    daemon = Daemon(settings, serve_http=False)
    daemon.watchlist.on_event(show)

    async def main_async() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(_until_signal, tg.cancel_scope)
            await tg.start(daemon.run)
            await daemon.watchlist.wait_for(
                lambda: all(
                    r.state is not RecordState.ACTIVE for r in daemon.watchlist.records.values()
                )
            )
            tg.cancel_scope.cancel()

    anyio.run(main_async)
    records = list(daemon.watchlist.records.values())
    all_done = bool(records) and all(
        r.state is RecordState.COMPLETE and r.result == "SUCCESS" for r in records
    )
    for r in records:
        if r.state is not RecordState.COMPLETE:
            print(f"{r.record_id} {r.state.value}: {r.error or ''}".rstrip(), flush=True)
    return EXIT_OK if all_done else EXIT_FAILED


def _simulate(args: argparse.Namespace) -> int:
    import secrets

    from monitor.simulator import FaultPlan, Simulator, serve

    configure_logging(None, "info")
    log = get_logger("monitor.simulator")
    token = args.token or secrets.token_urlsafe(24)
    sim = Simulator(
        seed=args.seed,
        speed=args.speed,
        tokens={token},
        faults=FaultPlan(args.fault_rate, seed=args.seed),
    )
    for spec in args.iam_user:
        domain, user, password = [*spec.split(":", 2), "", ""][:3]
        sim.iam_users[(domain, user)] = password
    for spec in args.aksk:
        ak, _, sk = spec.partition(":")
        sim.aksk[ak] = sk
    plans = sim.populate(args.records, duration_scale=args.duration_scale)
    jobs = [
        sim.add_job(every=args.build_every, duration_scale=args.duration_scale)
        for _ in range(args.jobs)
    ]

    projects = [
        sim.projects.add_project(
            args.jobs_per_project, every=args.build_every, duration_scale=args.duration_scale
        )
        for _ in range(args.projects)
    ]

    async def main_async() -> None:
        runner, port = await serve(sim, args.host, args.port)
        try:
            log.info(
                "simulator_started",
                url=f"http://{args.host}:{port}",
                records=[p.record_id for p in plans],
                jobs=[j.job_id for j in jobs],
                projects=[p.project_id for p in projects],
                job_list_shape=sim.projects.job_list_shape,
            )
            if not args.token:
                print(f"token: {token}", flush=True)
            async with anyio.create_task_group() as tg:
                tg.start_soon(_until_signal, tg.cancel_scope)
                await anyio.sleep_forever()
        finally:
            with anyio.CancelScope(shield=True):
                await runner.cleanup()

    anyio.run(main_async)
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from monitor.cli.demo import run_demo

    return run_demo(port=args.port, records=args.records, seed=args.seed)
