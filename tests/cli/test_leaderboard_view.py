"""The terminal leaderboard: readable at 80 columns (key columns, one line per model, a note on the rest)."""

from __future__ import annotations

import pandas as pd
from rich.console import Console

from pricecast import console as terminal
from pricecast.console import KEY_LEADERBOARD_COLUMNS, leaderboard_view


def _board() -> pd.DataFrame:
    names = ["moving_average", "naive", "ses", "ensemble", "prophet"]
    return pd.DataFrame(
        {
            "model": names,
            "mae": 1.0,
            "rmse": 1.2,
            "mase": [2.711284, 2.712140, 2.72, 5.06, 16.33],
            "rmsse": 2.5,
            "scaled_crps": [2.0655, 2.0663, 2.07, 3.64, 11.41],
            "pinball": 0.51,
            "oos_r2": [-0.0025123, 0.0, 0.0004295, -5.43, -67.92],
            "directional_accuracy": 0.5,
            "coverage_80": 0.8,
            "coverage_95": [0.925, 0.925, 0.925, 0.9175, 0.8325],
            "winkler_95": 35.5,
            "mean_rank": [3.25, 4.75, 5.0, 9.0, 10.0],
            "in_mcs": [True, True, True, False, False],
            "beats_naive_dm": [False, None, False, False, False],
            "n_scale_undefined": 0,
        }
    )


def test_at_80_columns_every_model_is_one_line_of_the_key_columns(monkeypatch):
    narrow = Console(width=80, record=True, force_terminal=False)
    monkeypatch.setattr(terminal, "out", narrow)
    view, note = leaderboard_view(_board(), width=80)
    terminal.print_frame(view, title="Leaderboard")
    lines = narrow.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80
    rows = [line for line in lines if "moving_average" in line or "prophet" in line]
    assert len(rows) == 2  # no wrapped cells: each model on one line
    assert list(view.columns) == ["model", "MASE", "sCRPS", "R2oos", "cov95", "rank", "MCS"]
    assert len(KEY_LEADERBOARD_COLUMNS) == len(view.columns)
    assert view["MCS"].tolist() == ["yes", "yes", "yes", "no", "no"]
    assert note is not None and "RMSSE" in note and "leaderboard.csv" in note


def test_a_wide_terminal_shows_every_column_and_a_scale_problem_always_shows():
    board = _board()
    wide, note = leaderboard_view(board, width=140)
    assert {"RMSSE", "pinball", "dir", "cov80", "DM>naive"} <= set(wide.columns) and note is None
    assert "no-scale" not in wide.columns
    board.loc[0, "n_scale_undefined"] = 2
    narrow, _ = leaderboard_view(board, width=80)
    assert "no-scale" in narrow.columns
