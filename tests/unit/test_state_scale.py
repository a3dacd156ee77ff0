"""Reading a large state file at the start of a run (resume, retry) in bounded memory.

`prepare_rollout` replays every final target in the order it ended. It used to
hold them all (`final_records()` returned a list: ~380 bytes per target, 9 MB
for these 20,000, ~400 MB at a million); it now streams them through one pass.
"""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from report_helpers import make_campaign

from orchestrator.model import TargetState
from orchestrator.rollout.gate import DURATIONS_KEPT
from orchestrator.rollout.options import RolloutOptions
from orchestrator.rollout.setup import prepare_rollout
from orchestrator.store.sqlite import StateStore

FLEET = 20_000
# Peak KiB of prepare_rollout over FLEET final targets: ~9,100 before, ~2,200 now
# (what is left is one float per succeeded target, for the learned job length).
PEAK_KIB = 4_000


def test_final_records_are_streamed_in_the_order_targets_ended(tmp_path: Path) -> None:
    campaign = make_campaign(tmp_path / "s.sqlite", 50)
    with StateStore.open(campaign.path, readonly=True) as store:
        records = store.final_records()
        assert not isinstance(records, list)  # an iterator over the query, never a list
        seqs = [r.seq for r in records]
    assert len(seqs) == campaign.count
    assert seqs == sorted(seqs)


def test_resuming_a_large_state_file_replays_it_in_bounded_memory(tmp_path: Path) -> None:
    campaign = make_campaign(tmp_path / "s.sqlite", FLEET)
    with StateStore.open(campaign.path) as store:
        tracemalloc.start()
        try:
            prepared = prepare_rollout(store, RolloutOptions())
            peak = tracemalloc.get_traced_memory()[1] // 1024
        finally:
            tracemalloc.stop()
        counts = store.counts()
    assert peak < PEAK_KIB
    gate = prepared.gate
    # Every final target was replayed: the waves' counts and the ledger agree with the file.
    assert sum(w.final for w in gate.waves.values()) == campaign.count
    assert sum(w.failed for w in gate.waves.values()) == counts[TargetState.FAILED]
    assert gate.ledger.failures == len(campaign.failed)
    kept = min(campaign.succeeded, DURATIONS_KEPT)
    assert gate.expected.source == f"p90 of {kept} finished jobs"
