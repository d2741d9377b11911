"""The daemon's HTTP server: /metrics, /healthz, /readyz (the status page and the admin API
add their own routes)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CollectorRegistry

from monitor.metrics.renderer import RecordCollector, render_metrics, wants_openmetrics


@dataclass
class Health:
    """What the probes ask. Each check returns a problem, or None when all is well."""

    liveness: list[Callable[[], str | None]] = field(default_factory=list)
    readiness: list[Callable[[], str | None]] = field(default_factory=list)


def _problems(checks: list[Callable[[], str | None]]) -> list[str]:
    return [p for p in (c() for c in checks) if p]


def build_app(
    collector: RecordCollector, registry: CollectorRegistry, health: Health
) -> web.Application:
    """The aiohttp application serving metrics and probes."""

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = render_metrics(
            collector, registry, wants_openmetrics(request.headers.get("Accept"))
        )
        resp = web.Response(body=body)
        resp.headers["Content-Type"] = content_type
        return resp

    async def healthz(request: web.Request) -> web.Response:
        problems = _problems(health.liveness)
        if problems:
            return web.json_response({"status": "fail", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        problems = _problems(health.liveness) + _problems(health.readiness)
        if problems:
            return web.json_response({"status": "fail", "problems": problems}, status=503)
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_site(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start serving; returns the runner (to clean up) and the port actually bound."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, reuse_address=True)
    await site.start()
    bound = port
    for address in runner.addresses:  # the real port when 0 was asked for
        bound = int(address[1])
        break
    return runner, bound
