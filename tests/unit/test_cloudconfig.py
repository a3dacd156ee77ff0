"""Where credentials come from (openstacksdk's precedence), and the endpoint rules
that follow from them: the token catalog's ECS URL and the known regions."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.cloud import regions
from orchestrator.cloud.cloudconfig import Places, load
from orchestrator.cloud.endpoints import Endpoints
from orchestrator.cloud.iam import ecs_from_catalog, strip_version
from orchestrator.errors import ProjectRefused, UsageError

CLOUDS = """\
clouds:
  otc:
    auth:
      auth_url: https://iam.eu-de.otc.t-systems.com/v3
      username: alice
      user_domain_name: OTC-EU-DE-000
      project_name: eu-de_fleet
    region_name: eu-de
  keys:
    ak: AKEXAMPLE
    sk: sk-secret
  tok:
    auth_type: token
    auth:
      token: tok-secret
"""
SECURE = "clouds:\n  otc:\n    auth:\n      password: pw-secret\n"


@pytest.fixture
def places(tmp_path: Path) -> Places:
    (tmp_path / "cwd").mkdir()
    folder = tmp_path / "home" / ".config" / "openstack"
    folder.mkdir(parents=True)
    return Places(tmp_path / "cwd", tmp_path / "home", tmp_path / "etc")


def home_file(places: Places, name: str, text: str) -> Path:
    path = places.home / ".config" / "openstack" / name
    path.write_text(text)
    return path


def test_named_cloud_merges_secure_yaml(places: Places) -> None:
    home_file(places, "clouds.yaml", CLOUDS)
    home_file(places, "secure.yaml", SECURE)
    config = load("otc", {}, places)
    assert config is not None
    assert (config.auth_type, config.username, config.password) == (
        "password",
        "alice",
        "pw-secret",
    )
    assert config.user_domain_name == "OTC-EU-DE-000" and config.region_name == "eu-de"
    assert "pw-secret" not in repr(config) and "pw-secret" not in str(config.describe())
    # Messages name the user by a shortened name: enough to tell which, not the login.
    assert config.label == "cloud 'otc', user 'a…e'"


@pytest.mark.parametrize(
    ("name", "kind", "secret"),
    [("keys", "aksk", "sk-secret"), ("tok", "token", "tok-secret")],
)
def test_aksk_and_token_clouds(places: Places, name: str, kind: str, secret: str) -> None:
    home_file(places, "clouds.yaml", CLOUDS)
    config = load(name, {}, places)
    assert config is not None and config.auth_type == kind and secret in config.secrets()


def test_os_cloud_variable_and_first_file_wins(places: Places, tmp_path: Path) -> None:
    home_file(places, "clouds.yaml", CLOUDS)
    # ./clouds.yaml comes before ~/.config/openstack/clouds.yaml, as in openstacksdk.
    (places.cwd / "clouds.yaml").write_text("clouds:\n  tok:\n    auth:\n      token: other\n")
    config = load(None, {"OS_CLOUD": "tok"}, places)
    assert config is not None and config.token == "other"
    override = tmp_path / "mine.yaml"
    override.write_text("clouds:\n  tok:\n    auth:\n      token: mine\n")
    config = load(None, {"OS_CLOUD": "tok", "OS_CLIENT_CONFIG_FILE": str(override)}, places)
    assert config is not None and config.token == "mine" and config.file == str(override)


def test_environment_precedence(places: Places) -> None:
    env = {
        "OS_AUTH_URL": "https://iam.eu-nl.otc.t-systems.com/v3",
        "OS_USERNAME": "bob",
        "OS_PASSWORD": "pw",
        "OS_USER_DOMAIN_NAME": "D",
        "OS_REGION_NAME": "eu-nl",
        "HUAWEICLOUD_SDK_AK": "AK",
        "HUAWEICLOUD_SDK_SK": "SK",
    }
    config = load(None, env, places)
    assert config is not None and config.source == "environment" and config.username == "bob"
    assert config.region_name == "eu-nl"
    token = load(None, {**env, "OS_AUTH_TOKEN": "t"}, places)
    assert token is not None and token.auth_type == "token"
    aksk = load(None, {"HUAWEICLOUD_SDK_AK": "AK", "HUAWEICLOUD_SDK_SK": "SK"}, places)
    assert aksk is not None and aksk.auth_type == "aksk"
    assert load(None, {}, places) is None


def test_a_single_cloud_needs_no_name(places: Places) -> None:
    home_file(places, "clouds.yaml", "clouds:\n  only:\n    auth:\n      token: t\n")
    config = load(None, {}, places)
    assert config is not None and config.cloud == "only"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("clouds:\n  otc:\n    auth: [\n", "clouds.yaml:4: not valid YAML"),
        (CLOUDS, "'auth.password'"),
        ("clouds:\n  otc:\n    auth_type: saml\n", "clouds.yaml:3: cloud 'otc': field 'auth_type'"),
        (
            "clouds:\n  otc:\n    auth:\n      username: [a]\n",
            "clouds.yaml:4: cloud 'otc': field 'auth.username'",
        ),
    ],
)
def test_errors_name_file_line_and_field(places: Places, text: str, expected: str) -> None:
    home_file(places, "clouds.yaml", text)
    with pytest.raises(UsageError) as info:
        load("otc", {}, places)
    assert expected in str(info.value)


def test_unknown_cloud_and_no_file(places: Places) -> None:
    with pytest.raises(UsageError, match=r"no clouds\.yaml found"):
        load("otc", {}, places)
    home_file(places, "clouds.yaml", CLOUDS)
    with pytest.raises(UsageError, match=r"no cloud named 'nope'.*keys, otc, tok"):
        load("nope", {}, places)


def test_catalog_url_is_stripped_to_the_base() -> None:
    assert strip_version("https://ecs.eu-de.otc.t-systems.com/v1/0123abcd") == (
        "https://ecs.eu-de.otc.t-systems.com"
    )
    assert strip_version("https://ecs.x.com/v2.1/$(tenant_id)s/") == "https://ecs.x.com"
    assert strip_version("https://ecs.x.com") == "https://ecs.x.com"
    catalog = [
        {"type": "compute", "endpoints": [{"region": "eu-de", "url": "https://nova/v2.1/p"}]},
        {
            "type": "ecs",
            "endpoints": [
                {"interface": "public", "region_id": "eu-de", "url": "https://ecs.de/v1/p"},
                {"interface": "internal", "region_id": "eu-de", "url": "https://int/v1/p"},
                {"interface": "public", "region_id": "eu-nl", "url": "https://ecs.nl/v1/p"},
            ],
        },
    ]
    assert ecs_from_catalog(catalog, "eu-de") == "https://ecs.de"
    assert ecs_from_catalog(catalog, "eu-ch2") is None
    assert ecs_from_catalog(catalog, None) is None  # two regions: ambiguous
    assert ecs_from_catalog(catalog[:1], "eu-de") is None  # Nova is not the ECS API


def test_endpoint_precedence_and_known_regions() -> None:
    assert regions.guess_cloud("https://iam.eu-de.otc.t-systems.com/v3") == "otc"
    assert regions.guess_cloud("https://iam.ap-southeast-1.myhuaweicloud.com/v3") == "huawei"
    assert regions.guess_cloud("http://127.0.0.1:5000/v3") is None
    eps = Endpoints(cloud="otc", region="eu-de", catalog=True)
    assert eps.for_region(None) == "https://ecs.eu-de.otc.t-systems.com"
    assert eps.for_region("eu-nl", "https://ecs.cat") == "https://ecs.cat"
    assert Endpoints(cloud="huawei").for_region("eu-west-101") == (
        "https://ecs.eu-west-101.myhuaweicloud.eu"
    )
    assert Endpoints("https://fixed", cloud="otc").for_region("eu-de", "https://cat") == (
        "https://fixed"
    )
    with pytest.raises(ProjectRefused, match="no ECS endpoint for region eu-de"):
        Endpoints(catalog=True).for_region("eu-de")
    with pytest.raises(ProjectRefused, match=r"catalog's ECS endpoint is unusable.*plain http"):
        Endpoints(catalog=True).for_region("eu-de", "http://ecs.example.com")
    with pytest.raises(UsageError, match="give --endpoint"):
        Endpoints()


# -- credentials that no header can carry: refused at load, named, never quoted -----------------


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OS_AUTH_TOKEN": "tok-\u20ac-secret"}, "OS_AUTH_TOKEN"),
        ({"OS_TOKEN": "tok-\u0100-secret"}, "OS_TOKEN"),
        ({"OS_AUTH_TOKEN": "tok-\x00-secret"}, "OS_AUTH_TOKEN"),
        ({"HUAWEICLOUD_SDK_AK": "AK\u4e2d", "HUAWEICLOUD_SDK_SK": "sk"}, "HUAWEICLOUD_SDK_AK"),
        (
            {
                "HUAWEICLOUD_SDK_AK": "AK",
                "HUAWEICLOUD_SDK_SK": "sk",
                "HUAWEICLOUD_SDK_SECURITY_TOKEN": "sts\u2028x",
            },
            "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        ),
    ],
)
def test_a_credential_no_header_can_carry_is_refused_at_load(
    places: Places, env: dict[str, str], named: str
) -> None:
    with pytest.raises(UsageError) as caught:
        load(None, env, places)
    message = str(caught.value)
    assert message.startswith(f"{named}: character ") and "HTTP header" in message
    assert "secret" not in message and "\u20ac" not in message


def test_a_clouds_yaml_token_no_header_can_carry_names_its_file_and_line(places: Places) -> None:
    path = home_file(places, "clouds.yaml", "clouds:\n  t:\n    auth:\n      token: tok-\u20ac\n")
    with pytest.raises(UsageError) as caught:
        load("t", {}, places)
    assert str(caught.value).startswith(f"{path}:4: cloud 't': field 'auth.token': character 5")


def test_a_hostile_catalog_is_one_projects_problem() -> None:
    catalog = [
        {"type": "ecs", "endpoints": 5},
        {"type": ["ecs"], "endpoints": []},
        {"type": "ecs", "endpoints": [{"region": ["eu-de"], "url": "https://x\x00y/v1"}]},
    ]
    assert ecs_from_catalog(catalog, "eu-de") is None  # a region that is not text: none
    url = ecs_from_catalog(catalog, None)
    assert url == "https://x\\x00y"  # cleaned on arrival
    with pytest.raises(ProjectRefused, match="catalog's ECS endpoint is unusable"):
        Endpoints(catalog=True).for_region(None, url)
