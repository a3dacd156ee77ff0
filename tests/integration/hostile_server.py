"""A deliberately hostile ECS API on 127.0.0.1, for the integration tests.

One aiohttp.web server answers the three calls the orchestrator makes, each in a
way chosen by name (`REINSTALL`, `JOB`, `SERVER`), and records every request it
receives, matched or not, by its raw (undecoded) path. It keeps just enough
state to be consistent where a test wants it to be: which servers it reinstalled
("acted on"), which job ids it handed out and for which server.

    async with HostileServer(reinstall="no_job_id", server="missing_fields") as api:
        ... api.url, api.requests, api.acted, api.posts_after_job_id()

`only=SERVER_ID` keeps the chosen answers for that one server (its job too) and
answers every other server well. It also plays IAM (`POST /v3/auth/tokens`, way
chosen by `iam`, `iam_only=PROJECT_ID` likewise), issuing tokens that name their
project, with a catalog pointing back at itself.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from aiohttp import web
from loopback import serve

LAUNCHED_BEFORE = "2024-01-01T00:00:00.000000"
OTHER_SERVER = "00000000-0000-4000-8000-000000000bad"
HUGE = 1536 * 1024  # bytes: more than the client's 1 MiB limit
DEEP = 1000  # levels of nesting: past Python's recursion limit when parsed
LONE_SURROGATE = "\udfff"  # JSON can say "\udfff"; UTF-8 cannot store it
HOSTILE_TEXT = "disk \u0000 broke\x1b[31m red \u202e txet\ud800"

_REINSTALL = re.compile(r"/v1/([^/]+)/cloudservers/([^/]+)/reinstallos")
_JOB = re.compile(r"/v1/([^/]+)/jobs/([^/]+)")
_SERVER = re.compile(r"/v1/([^/]+)/cloudservers/([^/]+)")
_LIST_V1 = re.compile(r"/v1/([^/]+)/cloudservers/detail")
_LIST_NOVA = re.compile(r"/v2(?:\.1)?/([^/]+)/servers/detail")


def _json(payload: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=json.dumps(payload).encode(), status=status, content_type="application/json"
    )


def _not_json() -> web.Response:
    return web.Response(
        body=b"<html><body>502 Bad Gateway</body></html>", status=200, content_type="text/html"
    )


def _huge(payload: dict[str, Any]) -> web.Response:
    return _json({**payload, "padding": "x" * HUGE})


def _deep(payload: dict[str, Any], status: int = 200) -> web.Response:
    """The answer with one more field nested DEEP levels down."""
    body = json.dumps(payload)[:-1] + ', "nested": ' + "[" * DEEP + "]" * DEEP + "}"
    return web.Response(body=body.encode(), status=status, content_type="application/json")


@dataclass
class Recorded:
    method: str
    path: str  # raw, as sent: percent-escapes kept
    kind: str  # reinstall, job, server, list_v1, list_nova, or unknown


@dataclass
class HostileServer:
    reinstall: str = "ok"
    job: str = "ok"
    server: str = "ok"
    act: bool = True  # whether a reinstall POST rebuilds the server, whatever it answers
    only: str | None = None  # the one server answered badly; None: every server
    iam: str = "ok"
    iam_only: str | None = None  # the one project IAM answers badly; None: every project
    issued: dict[str, str] = field(default_factory=dict)  # IAM token -> project

    requests: list[Recorded] = field(default_factory=list)
    acted: Counter[str] = field(default_factory=Counter)  # server_id -> reinstalls done
    jobs: dict[str, str] = field(default_factory=dict)  # job_id handed out -> server_id
    _relaunched: dict[str, str] = field(default_factory=dict)
    _first_job_at: dict[str, int] = field(default_factory=dict)  # server -> request index
    _runner: web.AppRunner | None = None
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def count(self, kind: str) -> int:
        return sum(1 for r in self.requests if r.kind == kind)

    def posts_after_job_id(self) -> dict[str, int]:
        """Reinstalls sent for a server after one of its reinstalls was given a job id."""
        late: Counter[str] = Counter()
        for index, r in enumerate(self.requests):
            m = _REINSTALL.fullmatch(r.path) if r.kind == "reinstall" else None
            if m and index > self._first_job_at.get(m.group(2), len(self.requests)):
                late[m.group(2)] += 1
        return dict(late)

    async def start(self) -> HostileServer:
        self._runner, self.port = await serve(self._dispatch)
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def __aenter__(self) -> HostileServer:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- routing ---------------------------------------------------------------------

    def _way(self, way: str, server_id: str | None) -> str:
        return way if self.only is None or server_id == self.only else "ok"

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        body = await request.read()
        if request.method == "POST" and path == "/v3/auth/tokens":
            self.requests.append(Recorded("POST", request.raw_path, "iam"))
            return _iam(self, body)
        if request.method == "POST" and (m := _REINSTALL.fullmatch(path)):
            self.requests.append(Recorded("POST", request.raw_path, "reinstall"))
            way = self._way(self.reinstall, m.group(2))
            return await REINSTALL[way](self, request, m.group(2))
        if request.method == "GET" and (m := _JOB.fullmatch(path)):
            self.requests.append(Recorded("GET", request.raw_path, "job"))
            way = self._way(self.job, self.jobs.get(m.group(2)))
            return await JOB[way](self, request, m.group(2))
        for kind, route in (("list_v1", _LIST_V1), ("list_nova", _LIST_NOVA)):
            if request.method == "GET" and route.fullmatch(path):
                self.requests.append(Recorded("GET", request.raw_path, kind))
                return await self._list(request, kind)
        if request.method == "GET" and (m := _SERVER.fullmatch(path)):
            self.requests.append(Recorded("GET", request.raw_path, "server"))
            way = self._way(self.server, m.group(2))
            return await SERVER[way](self, request, m.group(2))
        self.requests.append(Recorded(request.method, request.raw_path, "unknown"))
        return _json({"error": {"code": "Common.0404", "message": "no such route"}}, 404)

    async def _list(self, request: web.Request, kind: str) -> web.StreamResponse:
        """The lists show only the servers it rebuilt (the v1 list: none at all), each row
        as the single read would answer it: a way that spoils a row spoils the list."""
        rows = []
        for sid in self._relaunched if kind == "list_nova" else ():
            way = self._way(self.server, sid)
            answer = await SERVER[way](self, request, sid)
            try:
                assert isinstance(answer, web.Response) and isinstance(answer.body, bytes)
                row = json.loads(answer.body)["server"]
            except (ValueError, KeyError, TypeError, RecursionError):
                return answer  # not JSON, too deep, no server: the list answers that
            rows.append(row)
        if kind == "list_v1":
            return _json({"count": len(rows), "servers": rows})
        return _json({"servers": rows})

    # -- shared state --------------------------------------------------------------------

    def do_reinstall(self, server_id: str) -> None:
        if self.act:
            self.acted[server_id] += 1
            stamp = datetime.fromtimestamp(time.time(), UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")
            self._relaunched[server_id] = stamp

    def give_job(self, server_id: str) -> str:
        job_id = f"job{len(self.jobs) + 1:04d}"
        self.jobs[job_id] = server_id
        self._first_job_at.setdefault(server_id, len(self.requests) - 1)
        return job_id

    def server_fields(self, server_id: str) -> dict[str, Any]:
        relaunched = self._relaunched.get(server_id)
        return {
            "id": server_id,
            "status": "ACTIVE" if relaunched else "SHUTOFF",
            "OS-EXT-STS:vm_state": "active" if relaunched else "stopped",
            "OS-EXT-STS:task_state": None,
            "OS-SRV-USG:launched_at": relaunched or LAUNCHED_BEFORE,
        }


Handler = Callable[[HostileServer, web.Request, str], Awaitable[web.StreamResponse]]


# -- POST .../reinstallos -------------------------------------------------------------


async def _reinstall_ok(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _json({"job_id": api.give_job(sid)})


async def _reinstall_not_json(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _not_json()


async def _reinstall_huge(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _huge({"job_id": "job-in-a-huge-answer"})


async def _reinstall_no_job_id(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _json({})


async def _reinstall_null(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _json(None)


async def _reinstall_escape(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _json({"job_id": "../../cloudservers/" + OTHER_SERVER + "/reinstallos?x=%2F"})


async def _reinstall_error_200(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _json({"error": {"code": "Ecs.9999", "message": "it went wrong" * 500}})


async def _reinstall_drop(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    if request.transport is not None:
        request.transport.close()
    return web.Response(status=200)


async def _reinstall_deep(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    api.do_reinstall(sid)
    return _deep({"job_id": api.give_job(sid)})


async def _reinstall_refused_in_bad_text(
    api: HostileServer, request: web.Request, sid: str
) -> web.Response:
    # Refused before acting, in words no store or terminal should take as they are.
    error = {"code": "Ecs." + LONE_SURROGATE, "message": HOSTILE_TEXT}
    return _json({"error": error}, 400)


def _token_of(request: web.Request) -> str:
    return request.headers.get("X-Auth-Token", "(none)")


async def _reinstall_echo_403(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    # A policy refusal that quotes the caller's token back, as some gateways do.
    message = f"policy denies token {_token_of(request)} in this project"
    return _json({"error": {"code": "Pdp.0001", "message": message}}, 403)


async def _reinstall_echo_404(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    # A bare 404 (a gateway, not ECS) whose body quotes the token: the run stops on it.
    return _json({"message": f"no route for token {_token_of(request)}"}, 404)


REINSTALL: dict[str, Handler] = {
    "ok": _reinstall_ok,
    "not_json": _reinstall_not_json,
    "huge": _reinstall_huge,
    "no_job_id": _reinstall_no_job_id,
    "null": _reinstall_null,
    "job_id_escape": _reinstall_escape,
    "error_in_200": _reinstall_error_200,
    "drop": _reinstall_drop,
    "deep": _reinstall_deep,
    "refused_in_bad_text": _reinstall_refused_in_bad_text,
    "echo_403": _reinstall_echo_403,
    "echo_404": _reinstall_echo_404,
}


# -- GET .../jobs/{job_id} ----------------------------------------------------------------


def _job(api: HostileServer, job_id: str, **fields: Any) -> dict[str, Any]:
    sid = api.jobs.get(job_id, OTHER_SERVER)
    return {"job_id": job_id, "status": "SUCCESS", "entities": {"server_id": sid}, **fields}


async def _job_ok(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _json(_job(api, job_id))


async def _job_weird(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _json(_job(api, job_id, status="WEIRD"))


async def _job_other_server(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _json(_job(api, job_id, entities={"server_id": OTHER_SERVER}))


async def _job_not_json(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _not_json()


async def _job_huge(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _huge(_job(api, job_id))


async def _job_fail_bare(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    # FAIL with neither error_code nor fail_reason.
    return _json({"job_id": job_id, "status": "FAIL"})


async def _job_running_forever(
    api: HostileServer, request: web.Request, job_id: str
) -> web.Response:
    return _json(_job(api, job_id, status="RUNNING"))


async def _job_empty(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _json({})


async def _job_forgotten(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    # The service no longer knows the job it handed out (documented as Common.0011).
    return _json({"error": {"code": "Common.0011", "message": "Invalid job ID."}}, 400)


async def _job_unreadable_then_fail(
    api: HostileServer, request: web.Request, job_id: str
) -> web.Response:
    # Unusable answers until the runner settles from the server, then the job's FAIL.
    asked = sum(1 for r in api.requests if r.kind == "job" and r.path.endswith(job_id))
    if asked <= 5:
        return _not_json()
    fields = {"error_code": "Ecs.0101", "fail_reason": "EcsException: the disk broke."}
    return _json(_job(api, job_id, status="FAIL", **fields))


async def _job_deep(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    return _deep(_job(api, job_id))


async def _job_fail_surrogate_code(
    api: HostileServer, request: web.Request, job_id: str
) -> web.Response:
    return _json(_job(api, job_id, status="FAIL", error_code="Ecs." + LONE_SURROGATE))


async def _job_fail_bad_reason(
    api: HostileServer, request: web.Request, job_id: str
) -> web.Response:
    fields = {"error_code": "Ecs.0101", "fail_reason": HOSTILE_TEXT}
    return _json(_job(api, job_id, status="FAIL", **fields))


async def _job_fail_nul_reason(
    api: HostileServer, request: web.Request, job_id: str
) -> web.Response:
    # Valid UTF-8 and valid for SQLite; PostgreSQL's text cannot hold NUL.
    fields = {"error_code": "Ecs.0101", "fail_reason": "disk \u0000 broke"}
    return _json(_job(api, job_id, status="FAIL", **fields))


async def _job_fail_echo(api: HostileServer, request: web.Request, job_id: str) -> web.Response:
    fields = {"error_code": "Ecs.0101", "fail_reason": f"token {_token_of(request)} expired"}
    return _json(_job(api, job_id, status="FAIL", **fields))


JOB: dict[str, Handler] = {
    "ok": _job_ok,
    "unreadable_then_fail": _job_unreadable_then_fail,
    "forgotten": _job_forgotten,
    "weird_status": _job_weird,
    "other_server": _job_other_server,
    "not_json": _job_not_json,
    "huge": _job_huge,
    "fail_bare": _job_fail_bare,
    "empty": _job_empty,
    "running_forever": _job_running_forever,
    "deep": _job_deep,
    "fail_surrogate_code": _job_fail_surrogate_code,
    "fail_bad_reason": _job_fail_bad_reason,
    "fail_nul_reason": _job_fail_nul_reason,
    "fail_echo": _job_fail_echo,
}


# -- GET .../cloudservers/{server_id} -----------------------------------------------------


async def _server_ok(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    return _json({"server": api.server_fields(sid)})


async def _server_missing_fields(
    api: HostileServer, request: web.Request, sid: str
) -> web.Response:
    return _json({"server": {}})


async def _server_no_launched_at(
    api: HostileServer, request: web.Request, sid: str
) -> web.Response:
    fields = api.server_fields(sid)
    del fields["OS-SRV-USG:launched_at"]
    return _json({"server": fields})


async def _server_rebuilding(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    fields = api.server_fields(sid)
    return _json({"server": {**fields, "status": "REBUILD", "OS-EXT-STS:task_state": "rebuilding"}})


async def _server_empty(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    return _json({})


async def _server_other_id(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    return _json({"server": {**api.server_fields(sid), "id": OTHER_SERVER}})


async def _server_not_json(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    return _not_json()


async def _server_error(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    # The state a failed rebuild can leave: ERROR, launched_at as it was.
    fields = api.server_fields(sid)
    if api.acted[sid]:
        fields = {**fields, "status": "ERROR", "OS-SRV-USG:launched_at": LAUNCHED_BEFORE}
    return _json({"server": fields})


async def _server_deep(api: HostileServer, request: web.Request, sid: str) -> web.Response:
    return _deep({"server": api.server_fields(sid)})


SERVER: dict[str, Handler] = {
    "ok": _server_ok,
    "error_after_acting": _server_error,
    "missing_fields": _server_missing_fields,
    "no_launched_at": _server_no_launched_at,
    "empty": _server_empty,
    "rebuilding": _server_rebuilding,
    "other_id": _server_other_id,
    "not_json": _server_not_json,
    "deep": _server_deep,
}


# -- POST /v3/auth/tokens -----------------------------------------------------------------


def _iam(api: HostileServer, body: bytes) -> web.Response:
    scope = json.loads(body)["auth"]["scope"]
    project = scope["project"]["id"] if "project" in scope else None
    way = api.iam if api.iam_only is None or project == api.iam_only else "ok"
    token = f"MIIhostile-{project or 'domain'}-{len(api.issued):04d}-token"
    expires = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    catalog = [
        {
            "type": "ecs",
            "endpoints": [{"interface": "public", "region": "eu-de", "url": f"{api.url}/v1"}],
        }
    ]
    answer = {"token": {"expires_at": expires, "catalog": catalog}}
    if way == "deep":
        return _deep(answer, status=201)
    if way == "token_not_latin1":
        token = "MIIhostile-\u20ac-token"  # sent as UTF-8; no header can carry it back
    api.issued[token] = project or ""
    return web.Response(
        body=json.dumps(answer).encode(),
        status=201,
        content_type="application/json",
        headers={"X-Subject-Token": token},
    )
