"""The run: the loop that drives every target to a final state (submitting, following,
settling doubts, verifying), the pure decisions it asks (settle, verify), its
scheduling and pacing, and what prepares an invocation (campaign, preflight,
selection, shards, known jobs, retries)."""
