"""The body of a reinstall request: parsed and checked, or refused with the field named.

Two APIs: v1 (`parse_reinstall`, image without Cloud-Init) and v2
(`parse_reinstall_v2`, image with Cloud-Init, which adds `metadata.user_data`
and the system-disk encryption fields). Messages name fields and limits, never
a value, so user data and IDs sent by a client are not echoed back.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any

from orchestrator.simulator.errors import ApiFault

WITH_STOP_SERVER = "withStopServer"
USER_DATA_MAX_BYTES = 32 * 1024  # before base64 encoding, per the v2 reference
V2_FIELDS = frozenset({"keyname", "userid", "metadata", "mode"})
V2_METADATA = frozenset({"BYOL", "user_data", "__system__encrypted", "__system__cmkid"})
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


@dataclass(frozen=True, slots=True)
class ReinstallRequest:
    keyname: str
    userid: str
    mode: str | None
    byol: str | None
    api: str = "v1"  # "v1", or "v2" for the Cloud-Init API
    user_data_bytes: int | None = None  # v2: size of the decoded user data, if any
    encrypted: bool = False  # v2: __system__encrypted == "1"


def _spec(body: bytes) -> dict[str, Any]:
    """The `os-reinstall` object of a body, or the ApiFault for an empty or malformed one."""
    if not body.strip():
        raise ApiFault("Common.0002")
    try:
        data: Any = json.loads(body)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise ApiFault("Ecs.0005", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiFault("Ecs.0005", "The request body must be a JSON object.")
    spec = data.get("os-reinstall")
    if not isinstance(spec, dict):
        raise ApiFault("Ecs.0005", "Field 'os-reinstall' must be an object.")
    return spec


def _field_name(name: object) -> str:
    """A client's field name, shortened and quoted, for a message."""
    return repr(str(name)[:40])


def parse_reinstall(body: bytes) -> ReinstallRequest:
    """Raises ApiFault `Common.0002` for an empty body, `Ecs.0005` for an invalid one."""
    spec = _spec(body)
    for name in ("keyname", "userid"):
        if not isinstance(spec.get(name), str):
            raise ApiFault("Ecs.0005", f"Field 'os-reinstall.{name}' must be a string.")
    mode = spec.get("mode", None)
    if "mode" in spec and mode != WITH_STOP_SERVER:
        raise ApiFault("Ecs.0005", f"Field 'os-reinstall.mode' must be '{WITH_STOP_SERVER}'.")
    byol = None
    if "metadata" in spec:
        metadata = spec["metadata"]
        if not isinstance(metadata, dict):
            raise ApiFault("Ecs.0005", "Field 'os-reinstall.metadata' must be an object.")
        if "BYOL" in metadata:
            byol = metadata["BYOL"]
            if not isinstance(byol, str):
                raise ApiFault("Ecs.0005", "Field 'os-reinstall.metadata.BYOL' must be a string.")
    return ReinstallRequest(spec["keyname"], spec["userid"], mode, byol)


def parse_reinstall_v2(body: bytes) -> ReinstallRequest:
    """The Cloud-Init API's body, checked as its reference page documents it.

    Raises ApiFault `Common.0002` (empty body), `Ecs.0005` (invalid field,
    including a field the page does not document, user data that is not strict
    base64, is empty, is not text, or exceeds 32 KB before encoding), or
    `Ecs.0912` (inconsistent disk encryption fields).
    """
    spec = _spec(body)
    for name in spec:
        if name not in V2_FIELDS:
            field = f"os-reinstall.{_field_name(name)}"
            raise ApiFault("Ecs.0005", f"Field {field} is not a parameter of this API.")
    for name in ("keyname", "userid"):
        if not isinstance(spec.get(name), str) or not spec[name]:
            raise ApiFault("Ecs.0005", f"Field 'os-reinstall.{name}' must be a non-empty string.")
    mode = spec.get("mode", None)
    if "mode" in spec and mode != WITH_STOP_SERVER:
        raise ApiFault("Ecs.0005", f"Field 'os-reinstall.mode' must be '{WITH_STOP_SERVER}'.")
    metadata = spec.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ApiFault("Ecs.0005", "Field 'os-reinstall.metadata' must be an object.")
    for name, value in metadata.items():
        if name not in V2_METADATA:
            raise ApiFault(
                "Ecs.0005",
                f"Field os-reinstall.metadata.{_field_name(name)} is not a parameter of this API.",
            )
        if not isinstance(value, str):
            raise ApiFault("Ecs.0005", f"Field 'os-reinstall.metadata.{name}' must be a string.")
    user_data_bytes = None
    if "user_data" in metadata:
        user_data_bytes = _user_data_size(metadata["user_data"])
    encrypted = _encryption(metadata)
    return ReinstallRequest(
        spec["keyname"],
        spec["userid"],
        mode,
        metadata.get("BYOL"),
        api="v2",
        user_data_bytes=user_data_bytes,
        encrypted=encrypted,
    )


def _user_data_size(text: str) -> int:
    """The decoded size of `metadata.user_data`; ApiFault Ecs.0005 when it is not acceptable."""
    where = "Field 'os-reinstall.metadata.user_data'"
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise ApiFault("Ecs.0005", f"{where} must be base64-encoded.") from None
    if not data:
        raise ApiFault("Ecs.0005", f"{where} must not be empty.")
    if len(data) > USER_DATA_MAX_BYTES:
        raise ApiFault(
            "Ecs.0005",
            f"{where} exceeds {USER_DATA_MAX_BYTES} bytes before encoding ({len(data)} bytes).",
        )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiFault("Ecs.0005", f"{where} must be text (UTF-8) before encoding.") from None
    return len(data)


def _encryption(metadata: dict[str, str]) -> bool:
    """Whether the new system disk is encrypted; ApiFault Ecs.0912 for inconsistent fields."""
    encrypted = metadata.get("__system__encrypted")
    cmkid = metadata.get("__system__cmkid")
    if encrypted not in (None, "0", "1"):
        raise ApiFault("Ecs.0912", "Field 'metadata.__system__encrypted' must be '0' or '1'.")
    if cmkid is not None and encrypted is None:
        raise ApiFault(
            "Ecs.0912", "Field 'metadata.__system__cmkid' needs 'metadata.__system__encrypted'."
        )
    if encrypted == "1" and (cmkid is None or not _UUID.fullmatch(cmkid)):
        raise ApiFault(
            "Ecs.0912", "An encrypted system disk needs 'metadata.__system__cmkid', a key ID."
        )
    return encrypted == "1"
