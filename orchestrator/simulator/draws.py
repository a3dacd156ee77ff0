"""Deterministic draws from a seed and a few names.

Per-server properties and job outcomes come from a hash rather than a shared
random stream, so they do not depend on the order in which requests arrive:
the same seed gives the same fleet however the orchestrator walks it.
"""

from __future__ import annotations

import hashlib

_SCALE = float(1 << 64)


def _digest(seed: int, parts: tuple[object, ...], size: int) -> bytes:
    text = "\x1f".join([str(seed), *(str(part) for part in parts)])
    return hashlib.blake2b(text.encode(), digest_size=size).digest()


def unit(seed: int, *parts: object) -> float:
    """A number in [0, 1), fixed by the seed and the parts."""
    return int.from_bytes(_digest(seed, parts, 8), "big") / _SCALE


def hex_id(seed: int, *parts: object) -> str:
    """32 lowercase hex characters, fixed by the seed and the parts."""
    return _digest(seed, parts, 16).hex()


def uuid_like(seed: int, *parts: object) -> str:
    """A canonical lowercase UUID string, fixed by the seed and the parts."""
    h = hex_id(seed, *parts)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
