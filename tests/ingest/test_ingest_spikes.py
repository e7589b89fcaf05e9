"""ingest.spikes on arrays: which jumps are round-trip spikes (feed errors) and which are one-way moves (splits)."""

from __future__ import annotations

import numpy as np

from ingest.spikes import SPIKE_SESSIONS, find_spikes


def test_a_reverting_x100_run_is_one_spike():
    y = np.full(40, 70_000.0)
    y[10:18] *= 100  # 8 sessions at x100, then back
    assert find_spikes(y) == [(10, 17)]


def test_a_one_session_typo_is_a_spike():
    y = np.linspace(100.0, 110.0, 30)
    y[5] *= 1000
    assert find_spikes(y) == [(5, 5)]


def test_a_one_way_split_is_no_spike():
    y = np.concatenate([np.full(20, 100.0), np.full(20, 10.0)])  # unadjusted 1:10 split: never comes back
    assert find_spikes(y) == []


def test_a_return_later_than_the_spike_window_is_no_spike():
    y = np.full(60, 50.0)
    y[10 : 10 + SPIKE_SESSIONS + 5] *= 10  # back only after SPIKE_SESSIONS + 5 sessions
    assert find_spikes(y) == []


def test_short_series_have_no_spikes():
    assert find_spikes(np.array([1.0, 100.0])) == []
