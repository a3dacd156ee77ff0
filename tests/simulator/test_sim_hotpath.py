"""The simulator's hot-path shortcuts answer exactly as the long way round would."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime

import pytest
from sim_helpers import PROJECT, SERVER, ApiFactory, FakeClock
from test_sim_auth import AK, SK, signed_headers

from orchestrator.cloud import signing
from orchestrator.simulator import timefmt
from orchestrator.simulator.auth import sdk_timestamp


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _fresh(t: float) -> tuple[str, str, str]:
    """The three formats computed from scratch each time, as before the cache."""
    millis = round(t * 1000)
    micros = round(t * 1_000_000)
    return (
        _utc(millis // 1000).strftime("%Y-%m-%dT%H:%M:%S") + f".{millis % 1000:03d}Z",
        _utc(micros // 1_000_000).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros % 1_000_000:06d}",
        _utc(int(t)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def test_time_formats_match_formatting_afresh_across_seconds_and_refills() -> None:
    rng = random.Random(7)
    start = 1_800_000_000.0
    # Fractions that round up into the next second, repeats of one second, and more
    # distinct seconds than the table keeps, so it is refilled along the way.
    moments = [start + 0.9995, start + 0.9999996, start + 1.0, start + 1.25, start + 1.5]
    moments += [start + rng.uniform(0, 30_000_000) for _ in range(6000)]
    moments += [start + 0.0004, start + 1.9999999]
    for t in moments:
        assert (timefmt.job_time(t), timefmt.launched_at(t), timefmt.stamp(t)) == _fresh(t), t


def test_sdk_timestamp_matches_parsing_and_refuses_malformed_values_every_time() -> None:
    value = signing.sdk_date(_utc(1_800_000_000.4))
    assert sdk_timestamp(value) == signing.parse_sdk_date(value).timestamp() == 1_800_000_000.0
    for _ in range(2):  # a refusal is not remembered as a value
        with pytest.raises(ValueError):
            sdk_timestamp("20270115T080000")


async def test_a_date_seen_before_is_refused_once_it_is_stale(
    make_api: ApiFactory, clock: FakeClock
) -> None:
    api = await make_api(ak=AK, sk=SK)
    path = f"/v1/{PROJECT}/cloudservers/{SERVER}"
    headers = signed_headers(api, clock, "GET", path, b"")
    assert (await api.server(headers=headers)).status == 200
    # The same X-Sdk-Date value, now cached, sixteen minutes later on the server's clock.
    clock.advance(16 * 60)
    answer = await api.server(headers=headers)
    assert (answer.status, answer.code) == (401, "APIGW.0301")
    assert "15 minutes" in answer.body["error"]["message"]
    assert SK not in json.dumps(answer.body)
    assert (await api.stats())["unauthorized"] == 1


@pytest.mark.parametrize(
    "value",
    [
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host;x-sdk-date, Signature=ab12",
        "SDK-HMAC-SHA256 Access=A=K, SignedHeaders=host, Signature=s==",
        "SDK-HMAC-SHA256 Access=AK1,SignedHeaders=host, Signature=ab12",
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=ab12 ",
        "SDK-HMAC-SHA256 Access=AK1,  SignedHeaders=host,\tSignature=ab12",
        "SDK-HMAC-SHA256 Signature=ab12, Access=AK1, SignedHeaders=host",
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=ab12, Access=AK2",
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host",
        "SDK-HMAC-SHA256 Access=, SignedHeaders=host, Signature=ab12",
        "SDK-HMAC-SHA256  Access=AK1, SignedHeaders=host, Signature=ab12",
        "sdk-hmac-sha256 Access=AK1, SignedHeaders=host, Signature=ab12",
        "SDK-HMAC-SHA256 Access=AK1, SignedHeaders=host, Signature=ab12\n",
        "Bearer abc",
        "",
    ],
)
def test_authorization_fast_path_agrees_with_the_general_parse(value: str) -> None:
    assert signing.parse_authorization(value) == signing.parse_authorization_fields(value)
