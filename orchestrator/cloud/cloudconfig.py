"""Where the credentials come from: clouds.yaml (+ secure.yaml), OS_* variables, or AK/SK.

The rules are openstacksdk's (`openstack.config.loader`), kept small:

    cloud named by --os-cloud or OS_CLOUD   -> that entry of the first clouds.yaml found
                                                (OS_CLIENT_CONFIG_FILE, ./, ~/.config/openstack/,
                                                /etc/openstack/), with the same entry of the
                                                first secure.yaml found merged over it
    else OS_AUTH_TOKEN / OS_TOKEN            -> that token
    else OS_AUTH_URL, OS_USERNAME, ...       -> the environment as one cloud ("envvars")
    else HUAWEICLOUD_SDK_AK / _SK            -> AK/SK
    else a clouds.yaml with a single cloud   -> that cloud
    else                                     -> None

Passwords come only from files and the environment, never from the command
line, so `ps` never shows one. `CloudConfig.describe()` is what may be logged and
recorded: where the credentials came from and who they are, never a secret. Even
the identifiers are cut short there (`shortened`: the AK ID, the user and domain
names; the auth URL down to its site), as in every message (`label`): a report is
shared further than the credentials, and half of a login is still half of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from orchestrator import redact
from orchestrator.cloud.auth import (
    ENV_AK,
    ENV_SECURITY_TOKEN,
    ENV_SK,
    ENV_TOKEN,
    check_header_secret,
)
from orchestrator.errors import UsageError

SUFFIXES = (".yaml", ".yml", ".json")
PASSWORD_TYPES = frozenset({"password", "v3password"})
TOKEN_TYPES = frozenset({"token", "v3token"})
AKSK_TYPES = frozenset({"aksk", "ak/sk"})
ENV_AUTH_KEYS = {
    "OS_AUTH_URL": "auth_url",
    "OS_USERNAME": "username",
    "OS_PASSWORD": "password",
    "OS_USER_DOMAIN_NAME": "user_domain_name",
    "OS_USER_DOMAIN_ID": "user_domain_id",
    "OS_DOMAIN_NAME": "domain_name",
    "OS_PROJECT_ID": "project_id",
    "OS_PROJECT_NAME": "project_name",
    "OS_TENANT_ID": "project_id",
    "OS_TENANT_NAME": "project_name",
}


def shortened(value: str | None, head: int = 4, tail: int = 2) -> str | None:
    """An identifier cut to its first `head` and last `tail` characters at most, and
    to a third of it at most: enough to tell two apart, not to log in with."""
    if not value:
        return value
    first = min(head, len(value) // 3)
    last = min(tail, len(value) // 4)
    return value[:first] + "…" + (value[-last:] if last else "")


def url_site(url: str | None) -> str | None:
    """`scheme://host[:port]` of a URL: its path, query and any user name dropped."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(unparsable URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


@dataclass(frozen=True)
class CloudConfig:
    """One resolved set of credentials; secrets are hidden from repr."""

    source: str  # "clouds.yaml", "environment" or "aksk-environment"
    auth_type: str  # "password", "token" or "aksk"
    cloud: str | None = None
    file: str | None = None
    auth_url: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    user_domain_name: str | None = None
    user_domain_id: str | None = None
    project_id: str | None = None
    project_name: str | None = None
    token: str | None = field(default=None, repr=False)
    ak: str | None = None
    sk: str | None = field(default=None, repr=False)
    security_token: str | None = field(default=None, repr=False)
    region_name: str | None = None
    cacert: str | None = None

    def __post_init__(self) -> None:
        # Blanked from the start: an answer may quote one back before any request
        # object holding it exists.
        redact.register(*self.secrets())

    @property
    def label(self) -> str:
        """How to name these credentials in a message: cloud and user, never a secret."""
        who = f"user {shortened(self.username)!r}" if self.username else f"auth {self.auth_type}"
        where = f"cloud {self.cloud!r}" if self.cloud else self.source
        return f"{where}, {who}"

    def describe(self) -> dict[str, Any]:
        """What may be logged and recorded in the run's options: identifiers shortened."""
        return {
            "source": self.source,
            "file": self.file,
            "cloud": self.cloud,
            "auth_type": self.auth_type,
            "auth_url": url_site(self.auth_url),
            "username": shortened(self.username),
            "user_domain": shortened(self.user_domain_name or self.user_domain_id),
            "project_id": self.project_id,
            "project_name": self.project_name,
            "region": self.region_name,
            "access_key": shortened(self.ak),
        }

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self.password, self.token, self.sk, self.security_token) if s)


@dataclass(frozen=True)
class Places:
    """Where to look for clouds.yaml and secure.yaml (a test points these at a temp dir)."""

    cwd: Path
    home: Path
    site: Path = Path("/etc/openstack")

    @classmethod
    def default(cls) -> Places:
        return cls(Path.cwd(), Path.home())

    def dirs(self) -> list[Path]:
        return [self.cwd, self.home / ".config" / "openstack", self.site]


def _candidates(places: Places, stem: str, override: str | None) -> list[Path]:
    found = [Path(override).expanduser()] if override else []
    return found + [d / (stem + s) for d in places.dirs() for s in SUFFIXES]


def _first_file(candidates: list[Path]) -> Path | None:
    # openstacksdk reads the first file that exists and ignores the rest.
    return next((p for p in candidates if p.is_file()), None)


class _LineLoader(yaml.SafeLoader):
    """Remembers the line of each mapping key, so errors can name it."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    mapping = _Lines(loader.construct_mapping(node, deep=True))
    for key_node, _ in node.value:
        mapping.lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
    return mapping


class _Lines(dict[Any, Any]):
    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.lines: dict[Any, int] = {}


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read: {exc}") from None
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        raise UsageError(f"{path}{line}: not valid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise UsageError(f"{path}: not valid YAML: {type(exc).__name__}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a mapping with a 'clouds' key")
    return data


def _clouds(path: Path, data: dict[str, Any]) -> dict[str, Any]:
    clouds = data.get("clouds", {})
    if not isinstance(clouds, dict):
        raise UsageError(f"{path}{_at(data, 'clouds')}: field 'clouds' must be a mapping")
    return clouds


def _at(mapping: Any, key: str) -> str:
    line = getattr(mapping, "lines", {}).get(key)
    return f":{line}" if line else ""


def _merge(base: Any, over: Any) -> Any:
    """Deep merge as openstacksdk's merge_clouds: `over` wins, mappings merge."""
    if not (isinstance(base, dict) and isinstance(over, dict)):
        return over
    merged = _Lines(base)
    merged.lines = dict(getattr(base, "lines", {}))
    for key, value in over.items():
        merged[key] = _merge(base.get(key), value) if key in base else value
    return merged


def load(
    os_cloud: str | None,
    env: Mapping[str, str],
    places: Places | None = None,
) -> CloudConfig | None:
    """The credentials to use, by openstacksdk's precedence; None when there are none."""
    places = places or Places.default()
    name = (os_cloud or env.get("OS_CLOUD", "")).strip() or None
    if name is not None:
        return _from_file(name, env, places, named_by="--os-cloud" if os_cloud else "OS_CLOUD")
    token_var = ENV_TOKEN if env.get(ENV_TOKEN, "") else "OS_TOKEN"
    token = env.get(token_var, "").strip()
    if token:
        return CloudConfig(
            source="environment",
            auth_type="token",
            token=check_header_secret(token, token_var),
            project_id=_env(env, "OS_PROJECT_ID"),
            region_name=_env(env, "OS_REGION_NAME"),
            cacert=_env(env, "OS_CACERT"),
        )
    if any(key in env and env[key].strip() for key in ENV_AUTH_KEYS):
        return _from_env(env)
    ak, sk = _env(env, ENV_AK), _env(env, ENV_SK)
    if ak or sk:
        if not (ak and sk):
            missing = ENV_SK if ak else ENV_AK
            raise UsageError(
                f"AK/SK authentication needs both {ENV_AK} and {ENV_SK}; {missing} is not set"
            )
        security_token = _env(env, ENV_SECURITY_TOKEN)
        if security_token:
            check_header_secret(security_token, ENV_SECURITY_TOKEN)
        return CloudConfig(
            source="aksk-environment",
            auth_type="aksk",
            ak=check_header_secret(ak, ENV_AK),
            sk=sk,
            security_token=security_token,
            region_name=_env(env, "OS_REGION_NAME"),
            cacert=_env(env, "OS_CACERT"),
        )
    path = _first_file(_candidates(places, "clouds", env.get("OS_CLIENT_CONFIG_FILE")))
    if path is not None:
        clouds = _clouds(path, _read(path))
        if len(clouds) == 1:
            # openstacksdk's rule: a single cloud needs no name.
            return _from_file(next(iter(clouds)), env, places, named_by="the only cloud")
    return None


def _env(env: Mapping[str, str], key: str) -> str | None:
    return env.get(key, "").strip() or None


def _from_env(env: Mapping[str, str]) -> CloudConfig:
    auth = {field_: _env(env, key) for key, field_ in ENV_AUTH_KEYS.items() if _env(env, key)}
    entry: dict[str, Any] = {"auth": auth, "auth_type": _env(env, "OS_AUTH_TYPE") or "password"}
    for key, field_ in (("OS_REGION_NAME", "region_name"), ("OS_CACERT", "cacert")):
        if _env(env, key):
            entry[field_] = _env(env, key)
    return _parse(entry, source="environment", cloud=None, where="environment (OS_*)")


def _from_file(name: str, env: Mapping[str, str], places: Places, named_by: str) -> CloudConfig:
    candidates = _candidates(places, "clouds", env.get("OS_CLIENT_CONFIG_FILE"))
    path = _first_file(candidates)
    if path is None:
        looked = ", ".join(str(p) for p in candidates if p.suffix == ".yaml")
        raise UsageError(f"cloud {name!r} ({named_by}): no clouds.yaml found; looked in {looked}")
    clouds = _clouds(path, _read(path))
    entry = clouds.get(name)
    secure = _first_file(_candidates(places, "secure", env.get("OS_CLIENT_SECURE_FILE")))
    if secure is not None:
        secure_entry = _clouds(secure, _read(secure)).get(name)
        if secure_entry is not None:
            entry = _merge(entry or {}, secure_entry)
    if entry is None:
        known = ", ".join(sorted(map(str, clouds))) or "none"
        raise UsageError(f"{path}: no cloud named {name!r} ({named_by}); clouds there: {known}")
    if not isinstance(entry, dict):
        raise UsageError(f"{path}{_at(clouds, name)}: cloud {name!r} must be a mapping")
    return _parse(entry, source="clouds.yaml", cloud=name, where=str(path), file=path)


def _parse(
    entry: dict[str, Any],
    *,
    source: str,
    cloud: str | None,
    where: str,
    file: Path | None = None,
) -> CloudConfig:
    def at(holder: Any = None, key: str = "") -> str:
        # "file:line: cloud 'x'" - the line of the field when the YAML loader knew it.
        return f"{where}{_at(holder, key)}" + (f": cloud {cloud!r}" if cloud else "")

    auth = entry.get("auth") or {}
    if not isinstance(auth, dict):
        raise UsageError(f"{at(entry, 'auth')}: field 'auth' must be a mapping")

    def get(key: str, *, in_auth: bool = True) -> str | None:
        value = auth.get(key) if in_auth and key in auth else entry.get(key)
        if value is None or value == "":
            return None
        if not isinstance(value, str | int):
            holder = auth if in_auth and key in auth else entry
            prefix = "auth." if holder is auth else ""
            raise UsageError(f"{at(holder, key)}: field '{prefix}{key}' must be a string")
        return str(value).strip()

    def header(key: str) -> str | None:
        # Sent in a header (token, AK, security token): refused here if it cannot be.
        value = get(key)
        if value is not None:
            holder = auth if key in auth else entry
            prefix = "auth." if holder is auth else ""
            check_header_secret(value, f"{at(holder, key)}: field '{prefix}{key}'")
        return value

    ak, sk = header("ak"), get("sk")
    username, password, token = get("username"), get("password"), header("token")
    auth_type = (get("auth_type", in_auth=False) or "").lower()
    if not auth_type:
        if token and not username:
            auth_type = "token"
        elif (ak or sk) and not (username or password):
            auth_type = "aksk"
        else:
            auth_type = "password"
    common: dict[str, Any] = {
        "source": source,
        "cloud": cloud,
        "file": str(file) if file else None,
        "auth_url": get("auth_url"),
        "project_id": get("project_id"),
        "project_name": get("project_name"),
        "region_name": get("region_name", in_auth=False),
        "cacert": get("cacert", in_auth=False),
    }
    if auth_type in PASSWORD_TYPES:
        missing = [
            k for k, v in (("auth_url", common["auth_url"]), ("username", username)) if not v
        ]
        if not password:
            missing.append("password")
        domain = get("user_domain_name") or get("domain_name")
        domain_id = get("user_domain_id")
        if not (domain or domain_id):
            missing.append("user_domain_name")
        if missing:
            fields = ", ".join(f"'auth.{k}'" for k in missing)
            hint = (
                " (put the password in secure.yaml or OS_PASSWORD)" if "password" in missing else ""
            )
            raise UsageError(f"{at()}: password authentication needs {fields}{hint}")
        return CloudConfig(
            auth_type="password",
            username=username,
            password=password,
            user_domain_name=domain,
            user_domain_id=domain_id,
            **common,
        )
    if auth_type in TOKEN_TYPES:
        if not token:
            raise UsageError(f"{at()}: token authentication needs 'auth.token'")
        return CloudConfig(auth_type="token", token=token, **common)
    if auth_type in AKSK_TYPES:
        if not (ak and sk):
            raise UsageError(f"{at()}: AK/SK authentication needs both 'ak' and 'sk'")
        security_token = header("security_token")
        return CloudConfig(auth_type="aksk", ak=ak, sk=sk, security_token=security_token, **common)
    raise UsageError(
        f"{at(entry, 'auth_type')}: field 'auth_type' {auth_type!r} is not supported "
        "(password, token or aksk)"
    )
