"""Shards: disjoint parts of one campaign, so that several hosts can run it at once.

A target belongs to shard K of N when the first 32 bits of md5(server_id), as an
unsigned number, are K-1 modulo N. The hash is computed the same way by Python,
by SQLite (a function registered on the connection) and by PostgreSQL (an SQL
expression), so the stores and the tests agree on every target's shard; and it
depends only on the server ID, so a server stays in its shard when the inventory
is reordered or imported again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from orchestrator.errors import UsageError

MAX_SHARDS = 999
_SHARD = re.compile(r"^\s*(\d{1,3})\s*/\s*(\d{1,3})\s*$")


@dataclass(frozen=True, slots=True)
class Shard:
    """Shard `index` (1-based) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (1 <= self.index <= self.count <= MAX_SHARDS):
            raise ValueError(f"not a shard: {self.index}/{self.count}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, server_id: str) -> bool:
        return shard_hash(server_id) % self.count == self.index - 1


def shard_hash(server_id: str) -> int:
    """The first 32 bits of md5(server_id) as an unsigned number (stable everywhere)."""
    return int(hashlib.md5(server_id.encode(), usedforsecurity=False).hexdigest()[:8], 16)


def parse_shard(text: str | None) -> Shard | None:
    """`--shard K/N`: None when not given; a UsageError naming the option when invalid."""
    if text is None:
        return None
    match = _SHARD.match(text)
    if match:
        index, count = int(match[1]), int(match[2])
        if 1 <= index <= count <= MAX_SHARDS:
            return Shard(index, count)
    raise UsageError(
        f"--shard {text!r}: expected K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. --shard 1/2"
    )
