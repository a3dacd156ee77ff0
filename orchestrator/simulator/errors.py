"""The error codes the simulator answers with, and the exceptions that carry them.

HTTP statuses and messages follow the reference's error_codes.rst. Codes not in
that table: `APIGW.0101` (the gateway's answer for an API a cloud does not offer),
`APIGW.0301`/`APIGW.0307` (the API gateway's answers to bad
credentials), `APIGW.0308` (its throttling) and `APIGW.0203` for the injected
503, because no code of error_codes.rst has HTTP 503.

Three body shapes, as the real services answer (the official SDK reads all three):

    ApiFault       the ECS service      {"error": {"code", "message", "details"}}
    GatewayFault   the API gateway      {"error_code", "error_msg", "request_id"}
    NovaFault      the native Nova API  {"badRequest": {"code": 400, "message"}}
"""

from __future__ import annotations

import json

CODES: dict[str, tuple[int, str]] = {
    "Common.0001": (
        500,
        "A system exception occurred. Try again later or contact customer service.",
    ),
    "Common.0002": (400, "The request body cannot be left blank."),
    "Common.0011": (400, "Failed to query system tasks."),
    "Common.0013": (401, "Invalid token."),
    "Common.0024": (202, "Flow limit exceeded."),
    "Common.1503": (429, "Api flow control Error because the API request rate exceeds the limit."),
    "Ecs.0003": (
        403,
        "You do not have permission to perform this operation. Contact customer service to"
        " obtain permission.",
    ),
    "Ecs.0005": (400, "Invalid parameter values."),
    "Ecs.0100": (400, "The ECS status does not meet requirements."),
    "Ecs.0105": (400, "No system disk found. Attach the system disk to the ECS and try again."),
    "Ecs.0114": (404, "The ECS does not exist."),
    "Ecs.0314": (
        400,
        "The key pair does not exist. Refresh the key pair list and check the key pair.",
    ),
    "Ecs.0603": (501, "The commands are being executed. Try again later."),
    "Ecs.0605": (400, "ECS locked."),
    "Ecs.0912": (400, "Invalid disk encryption key."),
    "APIGW.0101": (404, "The API does not exist or has not been published in the environment."),
    "APIGW.0203": (503, "Backend unavailable."),
    "APIGW.0301": (401, "Incorrect IAM authentication information."),
    "APIGW.0307": (401, "The token must be updated."),
    "APIGW.0308": (429, "The throttling threshold has been reached:"),
    "Pdp.0001": (403, "Policy does not allow this action to be performed."),
}


class ApiFault(Exception):
    """An error answer: the code fixes the HTTP status, `detail` refines the message.

    Details are built from field names, states and IDs only, never from header
    values, so no credential can be echoed back.
    """

    def __init__(self, code: str, detail: str | None = None) -> None:
        self.status, base = CODES[code]
        self.code = code
        self.message = f"{base} {detail}" if detail else base
        super().__init__(f"{code}: {self.message}")

    def body(self) -> bytes:
        payload = {"error": {"code": self.code, "message": self.message, "details": []}}
        return json.dumps(payload).encode()


class GatewayFault(ApiFault):
    """An answer of the API gateway itself, in its flat shape with the request's ID."""

    def __init__(self, code: str, detail: str | None, request_id: str) -> None:
        super().__init__(code, detail)
        self.request_id = request_id

    def body(self) -> bytes:
        payload = {"error_code": self.code, "error_msg": self.message}
        return json.dumps({**payload, "request_id": self.request_id}).encode()


# Nova's fault names by HTTP status (webob's, as Nova's fault wrapper writes them).
_NOVA_FAULTS = {400: "badRequest", 404: "itemNotFound"}


class NovaFault(ApiFault):
    """An error of the native OpenStack Nova API: the fault's name holds code and message."""

    def __init__(self, status: int, message: str) -> None:
        Exception.__init__(self, f"{status}: {message}")
        self.status = status
        self.code = _NOVA_FAULTS[status]
        self.message = message

    def body(self) -> bytes:
        return json.dumps({self.code: {"code": self.status, "message": self.message}}).encode()
