"""The diagnosis: each variant against its plain model and naive, one sentence per model, and its report section."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from backtest.diagnosis import diagnosis_table
from backtest.evaluate import evaluate
from backtest.results import BacktestResult, empty_table
from common.schema import (
    BACKTEST_COLUMNS,
    BASE_MODEL,
    BEATS_NAIVE_DM,
    CUTOFF,
    DS,
    FAILURE_COLUMNS,
    FOLD,
    FOLD_INFO_COLUMNS,
    ID,
    KIND,
    LAST_Y,
    MASE,
    MASE_CHANGE,
    MODEL,
    N_FAILURES,
    NAIVE,
    P_VS_NAIVE,
    P_VS_PLAIN,
    PARAMS,
    SCALE_MAE,
    SCALE_MSE,
    TIMING_COLUMNS,
    TRAIN_END,
    TRAIN_START,
    TRIALS,
    TUNING_COLUMNS,
    VALIDATION_MAE,
    YHAT,
    H,
    Y,
)
from outputs.write import report_input
from reports.data import ReportInput
from reports.diagnosis import diagnosis_markdown, diagnosis_sentences, tuning_choices
from reports.html import SECTIONS, render_html
from reports.verdict import dm_versus_naive

HORIZON = 2


def _result(
    noise: dict[str, float],
    *,
    same_as: dict[str, str] | None = None,
    n_series: int = 2,
    n_folds: int = 40,
    failed: dict[str, list[int]] | None = None,
    seed: int = 0,
) -> BacktestResult:
    """A random-walk backtest by hand: naive forecasts the last value, model m forecasts y + N(0, noise[m]).

    `same_as` copies another model's forecasts (a variant that changed nothing); `failed` drops a model's folds
    and records them as failures, as the engine does.
    """
    rng = np.random.default_rng(seed)
    same_as, failed = same_as or {}, failed or {}
    sessions = pd.bdate_range("2022-01-03", periods=n_folds + HORIZON + 1)
    rows, info, failures = [], [], []
    for s in range(n_series):
        uid = f"S{s}"
        prices = 100 + np.cumsum(rng.normal(0, 1, len(sessions)))
        for fold in range(n_folds):
            info.append(
                {
                    ID: uid,
                    FOLD: fold,
                    CUTOFF: sessions[fold],
                    TRAIN_START: sessions[0],
                    TRAIN_END: sessions[fold],
                    LAST_Y: prices[fold],
                    SCALE_MAE: 0.8,
                    SCALE_MSE: 1.0,
                }
            )
            y = prices[fold + 1 : fold + 1 + HORIZON]
            forecasts = {NAIVE: np.full(HORIZON, prices[fold])}
            for model, sd in noise.items():
                forecasts[model] = y + rng.normal(0, sd, HORIZON)
            for model, source in same_as.items():
                forecasts[model] = forecasts[source].copy()
            for model, yhat in forecasts.items():
                if fold in failed.get(model, []):
                    failures.append({ID: uid, MODEL: model, FOLD: fold, "error_type": "ModelFitError", "message": "x"})
                    continue
                for h in range(HORIZON):
                    rows.append(
                        {
                            ID: uid,
                            MODEL: model,
                            FOLD: fold,
                            CUTOFF: sessions[fold],
                            DS: sessions[fold + 1 + h],
                            H: h + 1,
                            Y: y[h],
                            YHAT: yhat[h],
                        }
                    )
    forecasts_frame = pd.DataFrame(rows).reindex(columns=list(BACKTEST_COLUMNS))
    return BacktestResult(
        forecasts=forecasts_frame,
        timings=empty_table(TIMING_COLUMNS),
        failures=pd.DataFrame(failures, columns=list(FAILURE_COLUMNS)),
        fold_info=pd.DataFrame(info, columns=list(FOLD_INFO_COLUMNS)),
        meta={"plan": {"horizon": HORIZON, "step": 1}},
    )


@pytest.fixture(scope="module")
def variants_run():
    """lstm's covariates clearly help; its tuning changed nothing (identical forecasts); ets has no variants."""
    result = _result(
        {"lstm": 1.5, "lstm+cov": 0.3, "ets": 1.4}, same_as={"lstm+tuned": "lstm"}, failed={"lstm+cov": [3, 7]}
    )
    result.tuning = pd.DataFrame(
        [
            {
                ID: uid,
                MODEL: "lstm+tuned",
                FOLD: fold,
                PARAMS: json.dumps({"units": 16 if fold < 20 else 32, "window": 20}, sort_keys=True),
                VALIDATION_MAE: 1.0,
                TRIALS: 5,
            }
            for uid in ("S0", "S1")
            for fold in range(40)
        ],
        columns=list(TUNING_COLUMNS),
    )
    return result, evaluate(result)


def _row(diagnosis: pd.DataFrame, model: str) -> pd.Series:
    return diagnosis.set_index(MODEL).loc[model]


def test_covariates_that_carry_signal_are_significant_and_said_so(variants_run):
    _, evaluation = variants_run
    diagnosis = evaluation.diagnosis
    assert list(diagnosis[MODEL]) == ["lstm", "lstm+cov", "lstm+tuned"]  # ets ran without variants: no rows
    assert list(diagnosis[KIND]) == ["plain", "+cov", "+tuned"] and set(diagnosis[BASE_MODEL]) == {"lstm"}
    cov = _row(diagnosis, "lstm+cov")
    board = evaluation.leaderboard.set_index(MODEL)[MASE]
    assert cov[MASE] == board["lstm+cov"]  # the leaderboard's numbers
    assert cov[MASE_CHANGE] == pytest.approx(board["lstm+cov"] / board["lstm"] - 1) and cov[MASE_CHANGE] < -0.5
    assert cov[P_VS_PLAIN] < 0.001 and cov[N_FAILURES] == 4  # 2 folds x 2 series
    pct = f"{abs(cov[MASE_CHANGE]) * 100:.0f}%"
    (sentence,) = diagnosis_sentences(diagnosis)
    assert sentence.startswith(
        f"lstm: covariates improved MASE by {pct} "
        "(p < 0.001; lstm+cov failed on 4 series-fold units, compared on the rest)"
    )


def test_tuning_that_changed_nothing_is_not_significant(variants_run):
    _, evaluation = variants_run
    tuned = _row(evaluation.diagnosis, "lstm+tuned")
    assert tuned[P_VS_PLAIN] == 1.0 and tuned[MASE_CHANGE] == pytest.approx(0.0)
    (sentence,) = diagnosis_sentences(evaluation.diagnosis)
    assert "; tuning gave no significant gain (p = 1);" in sentence


def test_p_against_naive_is_the_verdicts(variants_run):
    _, evaluation = variants_run
    verdict_p = dm_versus_naive(evaluation.leaderboard, evaluation.dm)
    for model, row in evaluation.diagnosis.set_index(MODEL).iterrows():
        assert row[P_VS_NAIVE] == verdict_p[model].p_less
        assert row[BEATS_NAIVE_DM] == verdict_p[model].significant
    (sentence,) = diagnosis_sentences(evaluation.diagnosis)
    # On a random walk a forecast of y plus noise is an oracle: the variants beat naive, and the sentence names them.
    assert sentence.endswith("; lstm+cov (p < 0.001) beats naive.")


def test_only_covariates_and_too_few_folds():
    result = _result({"arimax": 1.0, "arimax+cov": 1.0}, n_folds=1, n_series=1)
    diagnosis = evaluate(result).diagnosis
    assert list(diagnosis[KIND]) == ["plain", "+cov"] and diagnosis[P_VS_PLAIN].isna().all()
    (sentence,) = diagnosis_sentences(diagnosis)
    assert sentence.startswith("arimax: covariates ") and "(too few folds to test)" in sentence
    assert "tuning" not in sentence and sentence.endswith("too few folds to test against naive.")


def test_a_variant_that_failed_every_fold_and_no_plain_model():
    result = _result({"prophet": 1.0, "prophet+tuned": 1.0}, failed={"prophet+tuned": list(range(40))})
    diagnosis = evaluate(result).diagnosis
    tuned = _row(diagnosis, "prophet+tuned")
    assert np.isnan(tuned[MASE]) and tuned[N_FAILURES] == 80
    (sentence,) = diagnosis_sentences(diagnosis)
    assert "tuning could not be judged: prophet+tuned produced no forecasts (80 failed units)" in sentence

    without_plain = _result({"lstm+cov": 1.0})
    (sentence,) = diagnosis_sentences(
        diagnosis_table(without_plain.forecasts, evaluate(without_plain).leaderboard, None)
    )
    assert "covariates could not be judged: the plain lstm produced no forecasts" in sentence
    assert "no naive baseline was run" not in sentence  # the leaderboard was not given: naive assumed run


def test_a_run_without_variants_has_no_diagnosis_and_an_unchanged_report(tmp_path, variants_run):
    variants_run[1].save(tmp_path / "run")  # an earlier run with variants into the same --out
    assert (tmp_path / "run" / "diagnosis.csv").exists()
    result = _result({"ets": 1.0, "lstm": 1.2})
    evaluation = evaluate(result)
    assert evaluation.diagnosis.empty and diagnosis_markdown(evaluation.diagnosis) == ""
    evaluation.save(tmp_path / "run")
    assert not list((tmp_path / "run").glob("diagnosis.*"))  # the same files as before variants existed
    html = render_html(report_input(result, evaluation, pd.DataFrame()), tmp_path / "r.html").read_text()
    assert 'id="diagnosis"' not in html and "Did covariates or tuning help?" not in html
    assert html.count("<section id=") == len(SECTIONS)


def test_report_section_and_markdown(variants_run, tmp_path):
    result, evaluation = variants_run
    base = report_input(result, evaluation, pd.DataFrame())
    data = ReportInput(
        **{**base.tables(), "meta": base.meta, "diagnosis": evaluation.diagnosis, "tuning": result.tuning}
    )
    html = render_html(data, tmp_path / "report.html").read_text(encoding="utf-8")
    section = html[html.index('<section id="diagnosis">') : html.index('<section id="horizon">')]
    assert html.index('<section id="significance">') < html.index('<section id="diagnosis">')
    assert '<a href="#diagnosis">Did covariates or tuning help?</a>' in html
    assert "<h2>Did covariates or tuning help?</h2>" in section
    assert "lstm: covariates improved MASE by" in section and "tuning gave no significant gain (p = 1)" in section
    for kind, span in (("plain", 2), ("+cov", 3), ("+tuned", 3)):  # one header per kind over its cells
        assert f'<th colspan="{span}" class="span">{kind}</th>' in section
    assert section.count(">p vs plain</th>") == 2 and section.count(">p vs naive</th>") == 3
    assert "+cov+tuned" not in section  # a kind the run did not have gets no column
    assert "<h3>Chosen hyperparameters</h3>" in section
    assert "units 16 · window 20" in section and "0–19" in section and "20–39" in section  # one row per choice

    markdown = diagnosis_markdown(evaluation.diagnosis, leaderboard=evaluation.leaderboard)
    assert markdown.startswith("# Did covariates or tuning help?\n")
    # long, one row per variant, so the Prefect UI does not clip it
    assert "| model | variant | MASE (vs plain) | p vs plain | p vs naive |" in markdown
    rows = [line for line in markdown.splitlines() if line.startswith("| lstm |")]
    assert [row.split(" | ")[1] for row in rows] == ["plain", "+cov", "+tuned"]
    assert "| **&lt; 0.001** |" in markdown and "- lstm: covariates improved MASE by" in markdown


def test_chosen_hyperparameters_one_row_per_distinct_choice():
    tuning = pd.DataFrame(
        {
            ID: ["A"] * 6,
            MODEL: ["ets+tuned"] * 6,
            FOLD: [0, 1, 2, 3, 4, 5],
            PARAMS: ['{"damped": true}'] * 2 + ['{"damped": false}'] * 2 + ['{"damped": true}'] * 2,
            VALIDATION_MAE: [1.0, 1.0, 2.0, 2.0, 3.0, 3.0],
            TRIALS: [4] * 6,
        }
    )
    choices = tuning_choices(tuning)
    assert choices is not None
    assert list(choices[PARAMS]) == ["damped True", "damped False"]  # as the constructor takes them
    assert list(choices["folds"]) == ["0–1, 4–5", "2–3"] and list(choices[VALIDATION_MAE]) == [2.0, 2.0]
    assert tuning_choices(empty_table(TUNING_COLUMNS)) is None
