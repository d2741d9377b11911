"""IAM's `POST /v3/auth/tokens` (password method): issues tokens the gateway accepts.

Not behind the API Gateway. Only project-scoped tokens open CodeArts Build.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from monitor.simulator.errors import keystone_error
from monitor.simulator.gateway import Gateway
from monitor.simulator.requestlog import RequestLog

TOKEN_LIFETIME = 24 * 3600.0


class Iam:
    """Users by (domain, name) and their passwords; issued tokens go to the gateway."""

    def __init__(
        self,
        *,
        gateway: Gateway,
        log: RequestLog,
        users: dict[tuple[str, str], str] | None = None,
        token_lifetime: float = TOKEN_LIFETIME,
    ) -> None:
        self.users: dict[tuple[str, str], str] = dict(users or {})
        self.token_lifetime = token_lifetime
        self.token_requests = 0  # POST /v3/auth/tokens answered, successful or not
        self.token_scopes: list[Any] = []  # the `scope` of each token request, for tests
        self._gateway = gateway
        self._log = log

    async def tokens(self, request: web.Request) -> web.Response:
        """`POST /v3/auth/tokens` with a password: 201, the token in `X-Subject-Token`."""
        self.token_requests += 1
        try:
            auth = (await request.json())["auth"]
            user = auth["identity"]["password"]["user"]
            name, password, domain = user["name"], user["password"], user["domain"]["name"]
            scope = auth["scope"]
            if "password" not in auth["identity"]["methods"]:
                raise KeyError("methods")
        except (ValueError, KeyError, TypeError):
            self._log(request, None, 400)
            return keystone_error(400, "The request body is invalid", "Bad Request")
        self.token_scopes.append(scope)
        if self.users.get((domain, name)) != password:
            self._log(request, None, 401)
            return keystone_error(401, "The username or password is wrong.", "Unauthorized")
        now = self._gateway.wall()
        token = "MIIsim" + secrets.token_urlsafe(48)  # INVENTED shape; real ones are PKI blobs
        domain_ref = {"id": _stable_id("domain", domain), "name": domain}
        body: dict[str, Any] = {
            "catalog": [],
            "expires_at": _iam_time(now + self.token_lifetime),
            "issued_at": _iam_time(now),
            "methods": ["password"],
            "roles": [{"id": "0", "name": "te_admin"}],
            "user": {
                "domain": domain_ref,
                "id": _stable_id("user", domain, name),
                "name": name,
                "password_expires_at": "",
            },
        }
        project = scope.get("project") if isinstance(scope, dict) else None
        if isinstance(project, dict) and (project.get("name") or project.get("id")):
            pname = project.get("name") or f"project-{project['id'][:8]}"
            body["project"] = {
                "domain": domain_ref,
                "id": project.get("id") or _stable_id("project", pname),
                "name": pname,
            }
            # Only project-scoped tokens open CodeArts Build; global ones are refused.
            self._gateway.issued[token] = now + self.token_lifetime
        else:
            body["domain"] = domain_ref
        self._log(request, None, 201)
        return web.json_response({"token": body}, status=201, headers={"X-Subject-Token": token})


def _iam_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _stable_id(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:32]
