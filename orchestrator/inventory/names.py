"""Column and key names: which known field a name that is not one probably means.

A known field is matched by its exact name, ignoring ASCII case (`rules.header_key`).
Any other name is an extra column, kept for the report, unless it is a near miss
of a known field: then the value it holds would silently not be used (with
`--keyname`, every server would get the default key instead of its own), so it
is an error naming the field it probably means. Three kinds, strongest first:

- the same name written differently (`key_name`, `KeyName`, `Server-ID`,
  `Project ID`): equal once ASCII case, '-', '_', '.' and spaces are dropped;
  always an error, even beside the field itself (two columns for one field);
- a name people use for the field (`stop_mode`, `key_pair`, `instance_id`,
  `region_name`, `tenant_id`);
- a typo (`projet_id`, `keynmae`, `regoin`): a close difflib match of a
  normalised name of at least five characters.

The last two are errors only where the field itself is not given: beside a
real `server_id`, a column `server` is someone's server name, not a typo.
Names such as `name`, `owner`, `team`, `server_name`, `project_name` or
`username` are not near misses.
"""

from __future__ import annotations

import difflib
import functools
import re
from dataclasses import dataclass
from typing import Final

from orchestrator.inventory.rules import KNOWN, header_key

_SEPARATORS = re.compile(r"[-_. ]+")
_TYPO_CUTOFF: Final = 0.8
_TYPO_MIN_CHARS: Final = 5  # shorter names (node, code, name) are too close to everything


def normalise(name: str) -> str:
    """The name without ASCII case, '-', '_', '.' and spaces."""
    return _SEPARATORS.sub("", header_key(name.strip()))


_NORMAL: Final = {normalise(key): key for key in KNOWN}
_ALIASES: Final = {
    normalise(alias): key
    for key, aliases in {
        "project_id": ("tenant_id", "tenant"),
        "server_id": ("instance_id", "ecs_id", "server_uuid", "instance_uuid"),
        "keyname": ("key_pair", "key_pair_name", "ssh_key", "ssh_key_name"),
        "mode": ("stop_mode", "stop_server", "with_stop_server", "reinstall_mode"),
        "region": ("region_name", "region_id"),
        "byol": ("metadata.BYOL", "metadata_byol"),
    }.items()
    for alias in aliases
}


@dataclass(frozen=True, slots=True)
class NearMiss:
    """A name that is not a known field but probably means `field`."""

    field: str
    kind: str  # "spelling", "alias" or "typo"

    @property
    def always(self) -> bool:
        """An error even where the field itself is given."""
        return self.kind == "spelling"

    def message(self, word: str, field_given: bool) -> str:
        """The problem, for a `word` ("column" or "key") named in the field of the problem."""
        target = f"{word} {self.field!r}"
        if self.kind == "spelling":
            why = f"is {target} written differently (case, '-', '_' and spaces do not count)"
        elif self.kind == "alias":
            why = f"probably means {target}"
        else:
            why = f"looks like a typo of {target}"
        if field_given:
            return f"{why}, which is given too; remove or rename one of them"
        return f"{why}; rename it to {self.field!r}, or its values would be ignored"


@functools.lru_cache(maxsize=4096)  # JSON asks for every key of every entry
def near_miss(name: str) -> NearMiss | None:
    """The known field `name` probably means, if it is not one itself."""
    if header_key(name.strip()) in KNOWN:
        return None
    plain = normalise(name)
    if plain in _NORMAL:
        return NearMiss(_NORMAL[plain], "spelling")
    if plain in _ALIASES:
        return NearMiss(_ALIASES[plain], "alias")
    if len(plain) >= _TYPO_MIN_CHARS:
        close = difflib.get_close_matches(plain, _NORMAL, n=1, cutoff=_TYPO_CUTOFF)
        if close:
            return NearMiss(_NORMAL[close[0]], "typo")
    return None


def near_misses(names: list[str]) -> list[tuple[str, NearMiss, bool]]:
    """(name, near miss, field given too) for each name of one header or object
    that is an error under the rules above, in the given order."""
    given = {header_key(name.strip()) for name in names}
    found = []
    for name in names:
        miss = near_miss(name)
        if miss is not None and (miss.always or miss.field not in given):
            found.append((name, miss, miss.field in given))
    return found
