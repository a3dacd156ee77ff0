"""An AK/SK key pair is never refused twice by one run.

The API gateway locks a key pair for about five minutes after five failed
signatures, for every tool that uses it. A run that went on sending after the first
refusal (every submit and poll worker has a request of its own) would lock it on
its own, and the run that replaces it after a fix would be refused too. So, with a
key pair:

    until one answer shows the signature accepted   one request at a time
    after a refusal of the signature                nothing more is sent: every
                                                    call raises AuthFailed at once

Requests already on the wire when the refusal arrives cannot be called back; with
the first rule none is, at the start of a run, where a wrong key shows. Tokens are
not held back: a refused token locks nothing, and IAM renews them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator.cloud.answers import Answer
from orchestrator.errors import AuthFailed


class CredentialGate:
    """What the client asks before and after each request signed with a key pair."""

    def __init__(self, *, key_pair: bool) -> None:
        self._key_pair = key_pair
        self._proven = not key_pair  # tokens: nothing to hold back
        self._lock = asyncio.Lock()
        self.refused: str | None = None  # the first refusal's summary

    def check(self) -> None:
        """Raise AuthFailed, without sending, once the key pair was refused."""
        if self.refused is not None:
            raise AuthFailed(
                f"not sent: the key pair was refused already ({self.refused}); nothing more"
                " is sent with it (the API gateway locks a key pair for about five minutes"
                " after five failed signatures). Check HUAWEICLOUD_SDK_AK/SK (or the cloud's"
                " ak/sk) and this host's clock, then resume"
            )

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Hold this for one request (and its renewals): one at a time until the key pair
        is proven, then no wait at all."""
        self.check()
        if self._proven:
            yield
            return
        await self._lock.acquire()
        if self._proven:  # proven while this one waited: go on alongside the others
            self._lock.release()
            self.check()
            yield
            return
        try:
            self.check()
            yield
        finally:
            self._lock.release()

    def answered(self, answer: Answer, summary: str) -> None:
        """Learn from an answer: a refusal of the credentials closes the gate; any
        answer of the service that is not one (2xx to 4xx) proves the key pair."""
        if not self._key_pair:
            return
        if answer.auth_refused:
            if self.refused is None:
                self.refused = summary
        elif 200 <= answer.status < 500:
            self._proven = True
