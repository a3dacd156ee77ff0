"""Which column and key names are near misses of a known field: a table."""

from __future__ import annotations

import pytest

from orchestrator.inventory.names import NearMiss, near_miss, near_misses


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # exact names (ASCII case and surrounding spaces ignored) are the fields themselves
        ("keyname", None),
        ("KEYNAME", None),
        (" server_id ", None),
        # the same name written differently
        ("key_name", NearMiss("keyname", "spelling")),
        ("KeyName-", NearMiss("keyname", "spelling")),
        ("Key Name", NearMiss("keyname", "spelling")),
        ("server-id", NearMiss("server_id", "spelling")),
        ("ServerID", NearMiss("server_id", "spelling")),
        ("Project ID", NearMiss("project_id", "spelling")),
        ("projectid", NearMiss("project_id", "spelling")),
        ("user_id", NearMiss("userid", "spelling")),
        ("B_Y_O_L", NearMiss("byol", "spelling")),
        # names people use for the field
        ("stop_mode", NearMiss("mode", "alias")),
        ("StopServer", NearMiss("mode", "alias")),
        ("key_pair", NearMiss("keyname", "alias")),
        ("Instance-ID", NearMiss("server_id", "alias")),
        ("tenant_id", NearMiss("project_id", "alias")),
        ("region_name", NearMiss("region", "alias")),
        ("metadata.BYOL", NearMiss("byol", "alias")),
        # typos
        ("projet_id", NearMiss("project_id", "typo")),
        ("Projekt-ID", NearMiss("project_id", "typo")),
        ("sever_id", NearMiss("server_id", "typo")),
        ("keynmae", NearMiss("keyname", "typo")),
        ("regoin", NearMiss("region", "typo")),
        ("server", NearMiss("server_id", "typo")),
        # genuinely other columns
        ("name", None),
        ("owner", None),
        ("team", None),
        ("node", None),
        ("code", None),
        ("note", None),
        ("server_name", None),
        ("project_name", None),
        ("username", None),
        ("hostname", None),
        ("flavor", None),
        ("image_id", None),
        ("zone", None),
        ("region_code", None),
        ("Besitzer", None),
        ("\u212aeyname", NearMiss("keyname", "typo")),  # Kelvin sign: a look-alike
    ],
)
def test_near_miss_table(name: str, expected: NearMiss | None) -> None:
    assert near_miss(name) == expected


def test_weak_near_misses_beside_their_field_are_other_columns() -> None:
    found = near_misses(["project_id", "server_id", "server", "stop_mode", "mode", "Key-Name"])
    assert [(name, miss.field, given) for name, miss, given in found] == [
        ("Key-Name", "keyname", False)
    ]
    found = near_misses(["project_id", "server_id", "keyname", "key_name"])
    assert [(name, given) for name, _, given in found] == [("key_name", True)]


def test_messages_name_the_field_and_what_to_do() -> None:
    miss = NearMiss("keyname", "spelling")
    assert miss.message("column", False) == (
        "is column 'keyname' written differently (case, '-', '_' and spaces do not count); "
        "rename it to 'keyname', or its values would be ignored"
    )
    assert NearMiss("mode", "alias").message("key", True) == (
        "probably means key 'mode', which is given too; remove or rename one of them"
    )
