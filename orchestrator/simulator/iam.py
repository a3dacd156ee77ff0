"""A fake IAM (Keystone v3) token service: password auth, project-scoped tokens.

    POST /v3/auth/tokens   201, the token in X-Subject-Token, expires_at and a
                           catalog whose `ecs` entry is the simulator's own URL

Answers follow Keystone, which is also what IAM does, including its least helpful
habit: a wrong password and a project the user may not use are both a bare 401,
so a client cannot tell them apart from the answer alone. ECS requests then
accept a token only for the project it was issued for, and only until it expires.
Tokens are random (prefix `MIIsim`, so tests can search outputs for any of them).
"""

from __future__ import annotations

import hmac
import json
import re
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.simulator.config import SimulatorConfig
from orchestrator.simulator.errors import ApiFault

TOKEN_PREFIX = "MIIsim"
_PROJECT_ID = re.compile(r"^[0-9a-f]{32}$")
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}


@dataclass(frozen=True, slots=True)
class Issued:
    project_id: str | None  # None for a domain-scoped token
    expires_at: float


class IamError(Exception):
    """A Keystone error answer: {"error": {"code": 401, "title": ..., "message": ...}}."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        self.message = message
        super().__init__(f"{status}: {message}")

    def body(self) -> bytes:
        error = {"code": self.status, "title": TITLES[self.status], "message": self.message}
        return json.dumps({"error": error}).encode()


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "Z"


class Iam:
    def __init__(self, config: SimulatorConfig) -> None:
        self._users = {(domain, name): password for name, password, domain in config.users}
        self._ttl = config.token_ttl
        self._regions = config.regions
        self._fleet_projects = (
            None if config.fleet is None else frozenset(p for p, _ in config.fleet)
        )
        self._tokens: dict[str, Issued] = {}
        self.issued: Counter[str] = Counter()  # project-scoped tokens, by project

    @property
    def enabled(self) -> bool:
        return bool(self._users)

    def knows(self, token: str) -> bool:
        return token in self._tokens

    def _project_exists(self, project_id: str) -> bool:
        if self._fleet_projects is not None:
            return project_id in self._fleet_projects
        return bool(_PROJECT_ID.match(project_id))

    def issue(self, body: bytes, base_url: str, now: float) -> tuple[str, dict[str, Any]]:
        """A new token for the request body, or IamError."""
        try:
            auth = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            name, password = str(user["name"]), str(user["password"])
            domain = user.get("domain") or {}
            domain_name = str(domain.get("name") or domain.get("id") or "")
            scope = auth.get("scope") or {}
        except (ValueError, KeyError, TypeError, AttributeError):
            raise IamError(400, "Expecting to find identity in auth.") from None
        expected = self._users.get((domain_name, name))
        if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
            raise IamError(401, "The username or password is wrong.")
        project_id: str | None = None
        if isinstance(scope, dict) and isinstance(scope.get("project"), dict):
            project_id = str(scope["project"].get("id") or "")
            if not self._project_exists(project_id):
                # Keystone's answer to a scope it will not grant: a plain 401.
                raise IamError(401, "The request you have made requires authentication.")
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        expires = now + self._ttl
        self._tokens[token] = Issued(project_id, expires)
        catalog: list[dict[str, Any]] = []
        body_token: dict[str, Any] = {
            "methods": ["password"],
            "issued_at": _iso(now),
            "expires_at": _iso(expires),
            "user": {"name": name, "domain": {"name": domain_name}},
            "catalog": catalog,
        }
        if project_id is not None:
            self.issued[project_id] += 1
            body_token["project"] = {"id": project_id, "domain": {"name": domain_name}}
            url = f"{base_url}/v1/{project_id}"
            endpoints = [
                {"interface": "public", "region": region, "region_id": region, "url": url}
                for region in self._regions
            ]
            catalog.append({"type": "ecs", "name": "ecs", "endpoints": endpoints})
        else:
            body_token["domain"] = {"name": domain_name}
        return token, {"token": body_token}

    def check(self, token: str, project_id: str, now: float) -> None:
        """Return when `token` may act in `project_id`; raise a 401 ApiFault otherwise."""
        issued = self._tokens[token]
        if now >= issued.expires_at:
            raise ApiFault("APIGW.0307")
        if issued.project_id != project_id:
            raise ApiFault("Common.0013", "The token is not scoped to this project.")
