"""The verdict sentence says which model is best, by how much versus naive, and whether anything beats naive."""

from __future__ import annotations

import pandas as pd

from common.schema import MODEL, H
from reports.data import BEATS_NAIVE_DM, MASE, MEAN_RANK
from reports.verdict import verdict

NOTHING = "no model beats the naive random walk at the 5% level (Diebold–Mariano, HLN-corrected)"


def _lb(*rows: tuple[str, float, float]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=[MODEL, MASE, MEAN_RANK])


def _dm(p_less: dict[str, float], *, h: int = 1) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {MODEL: m, "reference": "naive", H: h, "loss": loss, "stat": -1.0, "p_value": 2 * p, "p_less": p, "n": 250}
            for m, p in p_less.items()
            for loss in ("squared", "absolute")
        ]
    )


def _one_sentence(text: str) -> None:
    assert text.endswith(".") and ". " not in text.rstrip("."), text


def test_nothing_beats_naive_says_so_plainly():
    text = verdict(_lb(("naive", 1.0, 1.6), ("ets", 0.99, 1.4)), _dm({"ets": 0.30}))
    assert text.startswith("ets ranks best (mean rank 1.40, MASE 0.9900), 1.0% below naive's 1.000")
    assert NOTHING in text and "usual outcome on daily prices" in text
    _one_sentence(text)


def test_naive_best_and_nothing_beats_it():
    text = verdict(_lb(("naive", 1.0, 1.2), ("ets", 1.02, 1.8)), _dm({"ets": 0.8}))
    assert text.startswith("naive ranks best") and NOTHING in text
    _one_sentence(text)


def test_one_model_beats_naive_significantly():
    text = verdict(_lb(("naive", 1.0, 2.0), ("ets", 0.85, 1.0)), _dm({"ets": 0.012}))
    assert "ets ranks best" in text and "15% below naive's" in text
    assert "and it beats the naive random walk at the 5% level (Diebold–Mariano, HLN-corrected; p = 0.012)" in text
    assert "no model beats" not in text
    _one_sentence(text)


def test_a_model_other_than_the_best_beats_naive():
    lb = _lb(("naive", 1.0, 2.5), ("ets", 0.95, 1.5), ("arima", 0.97, 2.0))
    text = verdict(lb, _dm({"ets": 0.2, "arima": 0.03}))
    assert "but only arima beats the naive random walk" in text


def test_much_worse_than_naive_is_called_out():
    text = verdict(
        _lb(("naive", 1.0, 1.3), ("ets", 1.01, 1.7), ("prophet", 4.8, 3.0)), _dm({"ets": 0.6, "prophet": 1.0})
    )
    assert "prophet's MASE is 4.8× naive's" in text and NOTHING in text
    _one_sentence(text)


def test_several_much_worse_models_are_listed():
    lb = _lb(("naive", 1.0, 1.0), ("prophet", 4.8, 2.0), ("lstm", 2.0, 3.0))
    text = verdict(lb, _dm({"prophet": 1.0, "lstm": 0.9}))
    assert "prophet (4.8×) and lstm (2.0×) have MASE far above naive's" in text


def test_leaderboard_flag_is_the_definition_when_present():
    lb = _lb(("naive", 1.0, 2.0), ("ets", 0.9, 1.0)).assign(**{BEATS_NAIVE_DM: [False, True]})
    assert "and it beats the naive random walk" in verdict(lb, _dm({"ets": 0.5}))
    assert "and it beats the naive random walk" in verdict(lb, None)


def test_two_sided_p_value_counts_only_in_the_right_direction():
    dm = _dm({"ets": 0.01}).drop(columns="p_less")  # p_value 0.02, stat < 0 -> one-sided 0.01
    assert "it beats" in verdict(_lb(("naive", 1.0, 2.0), ("ets", 0.9, 1.0)), dm)
    dm["stat"] = 2.5  # the model is significantly WORSE: that is not "beating" naive
    assert NOTHING in verdict(_lb(("naive", 1.0, 2.0), ("ets", 0.9, 1.0)), dm)


def test_pooled_horizon_row_is_preferred_over_single_steps():
    dm = pd.concat([_dm({"ets": 0.5}, h=1), _dm({"ets": 0.01}, h=0)])
    assert "it beats" in verdict(_lb(("naive", 1.0, 2.0), ("ets", 0.9, 1.0)), dm)


def test_without_naive_or_models():
    assert "no naive baseline was run" in verdict(_lb(("ets", 0.9, 1.0)), None)
    assert verdict(pd.DataFrame(columns=[MODEL, MASE]), None).startswith("No model produced forecasts")


def test_fixture_tables(report_input):
    text = verdict(report_input.leaderboard, report_input.dm)
    assert NOTHING in text and "prophet's MASE is" in text


def test_leaderboard_without_mase_still_reports_significance():
    lb = pd.DataFrame({MODEL: ["naive", "ets"], MEAN_RANK: [2.0, 1.0]})
    text = verdict(lb, _dm({"ets": 0.0004}))
    assert text.startswith("ets ranks best (mean rank 1.00)") and "(Diebold–Mariano, HLN-corrected; p < 0.001)" in text
    assert "nan" not in text.lower()
