"""The verdict says which model has the lowest MASE, by how much versus naive, and whether anything beats naive."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from common.schema import (
    BENCHMARK,
    BEST_MODEL,
    IN_MCS,
    MCS_P_VALUE,
    MCS_SIZE,
    MODEL,
    N_MODELS,
    N_OBS,
    NAIVE,
    SPA_P_CONSISTENT,
    SPA_P_LOWER,
    SPA_P_UPPER,
    H,
)
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


def _mcs(p_values: dict[str, float], *, size: float = 0.10) -> pd.DataFrame:
    """An MCS table as backtest.multiple_testing writes it: in the set iff p > size (NaN: not tested, kept)."""
    rows = [
        {MODEL: m, IN_MCS: bool(np.isnan(p) or p > size), MCS_P_VALUE: p, MCS_SIZE: size} for m, p in p_values.items()
    ]
    return pd.DataFrame(rows)


def _spa(p: float, n_models: int, best: str | None) -> pd.DataFrame:
    row = {BENCHMARK: NAIVE, N_MODELS: n_models, N_OBS: 20, BEST_MODEL: best}
    return pd.DataFrame([{**row, SPA_P_LOWER: p, SPA_P_CONSISTENT: p, SPA_P_UPPER: p}])


def _one_sentence(text: str) -> None:
    assert text.endswith(".") and ". " not in text.rstrip("."), text


def _two_short_sentences(text: str) -> None:
    assert text.endswith(".") and text.rstrip(".").count(". ") == 1 and len(text) < 400, text


def test_nothing_beats_naive_says_so_plainly():
    text = verdict(_lb(("naive", 1.0, 1.6), ("ets", 0.99, 1.4)), _dm({"ets": 0.30}))
    assert text.startswith("ets has the lowest MASE (0.9900, mean rank 1.40), 1.0% below naive's 1.000")
    assert NOTHING in text and "usual outcome on daily prices" in text
    _one_sentence(text)


def test_naive_best_and_nothing_beats_it():
    text = verdict(_lb(("naive", 1.0, 1.2), ("ets", 1.02, 1.8)), _dm({"ets": 0.8}))
    assert text.startswith("naive has the lowest MASE (1.000, mean rank 1.20)") and NOTHING in text
    _one_sentence(text)


def test_one_model_beats_naive_significantly():
    text = verdict(_lb(("naive", 1.0, 2.0), ("ets", 0.85, 1.0)), _dm({"ets": 0.012}))
    assert "ets has the lowest MASE" in text and "15% below naive's" in text
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
    assert "lstm (2.0×) and prophet (4.8×) have MASE far above naive's" in text  # in MASE order, as the leaderboard


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
    assert text.startswith("ets leads on mean rank (1.00)") and "(Diebold–Mariano, HLN-corrected; p < 0.001)" in text
    assert "nan" not in text.lower()


# ---- the leader is the lowest MASE; nothing above naive is ever "best" -----------------------------------------
ISSUE_18 = (("naive", 2.052, 3.10), ("lstm", 2.097, 2.75), ("arima", 2.06, 3.0), ("ets", 2.055, 2.9))


def test_the_leader_is_the_lowest_mase_not_the_best_mean_rank():
    # GitHub issue #18: "lstm ranks best (mean rank 2.75, MASE 2.097), 2.2% above naive's 2.052".
    text = verdict(_lb(*ISSUE_18), _dm({"lstm": 0.6, "arima": 0.5, "ets": 0.4}))
    assert text.startswith("naive has the lowest MASE (2.052, mean rank 3.10)")
    assert "best" not in text and "above naive" not in text and "lstm" not in text
    _one_sentence(text)


@pytest.mark.parametrize("seed", range(20))
def test_a_model_above_naive_is_never_called_best(seed):
    rng = np.random.default_rng(seed)
    names = ["naive", "ets", "arima", "lstm", "prophet"]
    lb = _lb(*zip(names, rng.uniform(0.8, 1.3, 5), rng.permutation(np.arange(1.0, 6.0)), strict=True))
    p = dict(zip(names[1:], rng.uniform(0, 1, 4), strict=True))
    mcs = _mcs({m: float(rng.uniform(0, 1)) for m in names})
    for text in (verdict(lb, _dm(p)), verdict(lb, _dm(p), mcs=mcs, spa=_spa(float(rng.uniform()), 4, "ets"))):
        assert "best" not in text
        leader = lb.loc[lb[MASE].idxmin(), MODEL]
        assert text.startswith(f"{leader} has the lowest MASE")
        assert "above naive" not in text.split(".")[0]


def test_a_tie_with_naive_is_level_not_better():
    text = verdict(_lb(("naive", 1.0, 2.0), ("ets", 1.0, 1.0)), _dm({"ets": 0.5}))
    assert text.startswith("ets has the lowest MASE (1.000, mean rank 1.00), level with naive's MASE")


# ---- the model confidence set and Hansen's SPA test ------------------------------------------------------------
def test_nothing_beats_naive_after_the_spa_test():
    mcs = _mcs({"naive": 1.0, "ets": 0.8, "arima": 0.5, "lstm": 0.03})
    text = verdict(_lb(*ISSUE_18), _dm({"lstm": 0.6, "arima": 0.5, "ets": 0.4}), mcs=mcs, spa=_spa(0.43, 3, "ets"))
    assert text == (
        "naive has the lowest MASE (2.052, mean rank 3.10), and the 10% model confidence set holds naive, ets and "
        "arima. Nothing beats the naive random walk (Hansen's SPA test over 3 models, p = 0.43), the usual outcome "
        "on daily prices."
    )
    _two_short_sentences(text)


def test_a_model_that_survives_the_spa_test_beats_naive():
    lb = _lb(("naive", 1.0, 2.5), ("ets", 0.85, 1.2), ("arima", 0.97, 2.0), ("lstm", 1.05, 2.9))
    mcs = _mcs({"ets": 1.0, "arima": 0.04, "naive": 0.01, "lstm": 0.002})
    text = verdict(lb, _dm({"ets": 0.004, "arima": 0.2, "lstm": 0.7}), mcs=mcs, spa=_spa(0.003, 3, "ets"))
    assert "15% below naive's 1.000, and the 10% model confidence set holds only ets." in text
    assert "ets beats the naive random walk even allowing for the 3 models tried (Hansen's SPA test, p = 0.003)" in text
    assert "Diebold" not in text  # the per-model DM test adds nothing here
    _two_short_sentences(text)


def test_a_dm_win_that_does_not_survive_the_correction_says_so():
    lb = _lb(("naive", 1.0, 2.5), ("ets", 0.97, 1.2), ("arima", 0.99, 2.0), ("lstm", 1.02, 2.9))
    mcs = _mcs({"ets": 1.0, "arima": 0.6, "naive": 0.4, "lstm": 0.2})
    text = verdict(lb, _dm({"ets": 0.03, "arima": 0.2, "lstm": 0.7}), mcs=mcs, spa=_spa(0.12, 3, "ets"))
    assert "the 10% model confidence set holds all 4 models (ets, arima, naive and lstm)" in text
    assert (
        "Nothing beats the naive random walk once the 3 models tried are allowed for (Hansen's SPA test, p = 0.12)"
        in text
    )
    assert "ets's own Diebold–Mariano result (p = 0.03) does not survive the multiple-testing correction" in text
    two = verdict(lb, _dm({"ets": 0.03, "arima": 0.04}), mcs=mcs, spa=_spa(0.12, 3, "ets"))
    assert "the Diebold–Mariano results of ets and arima on their own (p = 0.03 and p = 0.04) do not survive" in two
    _two_short_sentences(text)


def test_the_much_worse_warning_stays():
    lb = _lb(("naive", 1.0, 1.3), ("ets", 1.01, 1.7), ("prophet", 4.8, 3.0))
    text = verdict(
        lb,
        _dm({"ets": 0.6, "prophet": 1.0}),
        mcs=_mcs({"naive": 1, "ets": 0.7, "prophet": 0.0}),
        spa=_spa(0.6, 2, "ets"),
    )
    assert text.endswith("the usual outcome on daily prices; prophet's MASE is 4.8× naive's.")
    _two_short_sentences(text)


def test_large_sets_are_counted_and_sizes_come_from_the_table():
    names = ["naive", *(f"m{k}" for k in range(9))]
    lb = _lb(*((m, 1.0 + k / 100, k + 1.0) for k, m in enumerate(names)))
    mcs = _mcs({m: (0.5 if k < 8 else 0.01) for k, m in enumerate(names)}, size=0.25)
    text = verdict(lb, None, mcs=mcs, spa=_spa(0.7, 9, "m0"))
    assert "the 25% model confidence set holds 8 of the 10 models" in text
    assert "(Hansen's SPA test over 9 models, p = 0.7)" in text


def test_untested_tables_fall_back_to_the_dm_sentence():
    lb = _lb(("naive", 1.0, 2.0), ("ets", 0.9, 1.0))
    untested = verdict(lb, _dm({"ets": 0.3}), mcs=_mcs({"naive": np.nan, "ets": np.nan}), spa=_spa(np.nan, 1, "ets"))
    assert untested == verdict(lb, _dm({"ets": 0.3})) and NOTHING in untested
    _one_sentence(untested)
    spa_only = verdict(lb, _dm({"ets": 0.3}), spa=_spa(0.3, 1, "ets"))
    assert "Nothing beats the naive random walk (Hansen's SPA test, p = 0.3)" in spa_only
    mcs_only = verdict(lb, _dm({"ets": 0.3}), mcs=_mcs({"naive": 0.2, "ets": 1.0}))
    assert (
        "the 10% model confidence set holds both models (ets and naive): the folds cannot tell them apart" in mcs_only
    )
    assert "No model beats the naive random walk at the 5% level" in mcs_only


def test_old_positional_calls_still_work(report_input):
    assert verdict(report_input.leaderboard, report_input.dm, alpha=0.05, reference="naive") == verdict(
        report_input.leaderboard, report_input.dm
    )
