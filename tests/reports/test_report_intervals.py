"""The report's multiple-testing block (MCS, SPA) and interval-calibration section; both absent for older runs."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import pytest

from common.schema import INTERVAL_TEST_COLUMNS, MCS_COLUMNS, MODEL, NAIVE, SPA_COLUMNS
from reports.data import ReportInput, model_order
from reports.html import SECTIONS, build_context, render_html


def _mcs(models: list[str], *, tested: bool = True) -> pd.DataFrame:
    """prophet is out of the 10% set; the rows are deliberately not in the leaderboard's order."""
    p = {NAIVE: 0.76, "ets": 1.0, "prophet": 0.0004}
    rows = [
        {
            MODEL: m,
            "in_mcs": m != "prophet",
            "mcs_p_value": p[m] if tested else np.nan,
            "mcs_size": 0.1,
        }
        for m in sorted(models, reverse=True)
    ]
    return pd.DataFrame(rows, columns=list(MCS_COLUMNS))


def _spa(*, p_consistent: float = 0.6565) -> pd.DataFrame:
    row = {
        "benchmark": NAIVE,
        "n_models": 2,
        "n": 6,
        "best_model": "ets",
        "spa_p_lower": 0.55,
        "spa_p_consistent": p_consistent,
        "spa_p_upper": 0.70,
        "block_size": 3,
        "reps": 2000,
    }
    return pd.DataFrame([row], columns=list(SPA_COLUMNS))


def _interval_tests() -> pd.DataFrame:
    """naive and prophet at 80 and 95 (ets has no bands, so no rows); prophet's coverage is rejected by Kupiec."""
    rows = []
    for model, level, violations, kupiec_p, christoffersen_p, cc_p in (
        (NAIVE, 80, 12, 0.52, 0.40, 0.55),
        (NAIVE, 95, 3, 0.81, 0.90, 0.93),
        ("prophet", 80, 30, 0.0123, 0.0004, 0.00002),
        ("prophet", 95, 14, 0.0009, 0.30, 0.004),
    ):
        n = 60
        rows.append(
            {
                MODEL: model,
                "interval_level": level,
                "n_intervals": n,
                "n_violations": violations,
                "violation_rate": violations / n,
                "expected_rate": 1 - level / 100,
                "kupiec_stat": 1.0,
                "kupiec_p": kupiec_p,
                "n_transitions": n - 2,
                "christoffersen_stat": 1.0,
                "christoffersen_p": christoffersen_p,
                "cc_stat": 2.0,
                "cc_p": cc_p,
            }
        )
    return pd.DataFrame(rows, columns=list(INTERVAL_TEST_COLUMNS))


@pytest.fixture(scope="module")
def with_tests(report_input) -> ReportInput:
    models = [str(m) for m in report_input.leaderboard[MODEL]]
    meta = {
        **report_input.meta,
        "intervals": "native",
        "conformal_models": ["ets"],
        "calibration_windows": 8,
        "conformal_window": 20,
    }
    return dataclasses.replace(report_input, mcs=_mcs(models), spa=_spa(), interval_tests=_interval_tests(), meta=meta)


@pytest.fixture(scope="module")
def html(with_tests, tmp_path_factory) -> str:
    return render_html(with_tests, tmp_path_factory.mktemp("r") / "report.html").read_text(encoding="utf-8")


def _section(html: str, section_id: str) -> str:
    start = html.index(f'<section id="{section_id}">')
    return html[start : html.index("</section>", start)]


def _rows(fragment: str) -> list[list[str]]:
    """Each table body row's cell texts."""
    body = fragment[fragment.index("<tbody>") : fragment.index("</tbody>")]
    return [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)]


def test_mcs_table_in_leaderboard_order_with_ticks(with_tests, html):
    block = _section(html, "significance")
    block = block[block.index('id="multiple-testing"') :]
    assert "<h3" in _section(html, "significance") and "Multiple testing" in block
    rows = _rows(block)
    order = model_order(with_tests.leaderboard)
    assert [r[0] for r in rows] == order  # the MCS table's own (reverse) order is not kept
    tick = {r[0]: r[1] for r in rows}
    assert tick == {NAIVE: "✓", "ets": "✓", "prophet": ""}
    p_values = {r[0]: r[2] for r in rows}
    assert p_values == {NAIVE: "0.76", "ets": "1", "prophet": "&lt; 0.001"}
    assert ">in the 10% set</th>" in block and ">MCS p-value</th>" in block
    assert "cannot tell apart from the best at 10%" in block and "number of models tried" in block


def test_spa_line_shows_the_consistent_p_and_the_models_tried(html):
    block = _section(html, "significance")
    line = re.search(r'<p class="spa">(.*?)</p>', block).group(1)
    assert line.startswith("Hansen&#39;s SPA test of &#39;no model beats naive&#39; over 2 models and 6 folds")
    assert "p = 0.66 (consistent; lower 0.55, upper 0.7)" in line
    assert "stationary bootstrap, mean block length 3, 2,000 replications, seed fixed" in line
    assert "lowest mean loss is ets" in line


def test_interval_section_rows_and_rejections(html):
    assert '<a href="#intervals">Interval calibration</a>' in html
    assert html.index('id="significance"') < html.index('id="intervals"') < html.index('id="horizon"')
    section = _section(html, "intervals")
    rows = _rows(section)
    assert [(r[0], r[1]) for r in rows] == [(NAIVE, "80%"), (NAIVE, "95%"), ("prophet", "80%"), ("prophet", "95%")]
    assert rows[0][2:4] == ["80.0%", "60"]  # observed coverage = 1 - 12/60; n
    assert rows[2][2] == "50.0%"
    # prophet's Kupiec p 0.0123 is rejected at 5% and marked; naive's 0.52 is not
    assert '<td class="num rejected" title="rejected at 0.05">0.0123</td>' in section
    assert re.search(r'<td class="num">0.52</td>', section)
    rejected = re.findall(r'<td class="[^"]*\brejected\b[^"]*"', section)
    assert len(rejected) == 5  # prophet: 3 at 80%, Kupiec and cond. coverage at 95% (Christoffersen 0.3 passes)
    assert "(5 cells)" in section
    assert "coverage is off nominal" in section and "clustered in time" in section


def test_bands_sentence_names_the_conformal_models_and_the_warm_up(with_tests, html, tmp_path):
    section = _section(html, "intervals")
    assert "The bands of ets are split-conformal (no native intervals); the others are the models&#39; own" in section
    # 8 calibration origins, but a band always uses at least the 20 a finite 95% quantile needs
    assert (
        "calibrated on the latest 20 known forecast errors per horizon step at each cutoff, "
        "starting from 8 calibration origins before the first fold." in section
    )
    every = dataclasses.replace(
        with_tests,
        meta={**with_tests.meta, "intervals": "conformal", "calibration_windows": 30, "conformal_window": 30},
    )
    bands = build_context(every, title="t")["intervals"]["bands"]
    assert bands.startswith("Every model's bands are split-conformal")
    assert "latest 30 known forecast errors" in bands and "from 30 calibration origins" in bands
    run = _section(html, "run")
    facts = (
        "<dt>Interval bands</dt><dd>each model&#39;s own; split-conformal for ets · 8 calibration origins · "
        "each band from the latest 20 known errors</dd>"
    )
    assert facts in run
    for raw in ("Conformal models", "Calibration windows", "Conformal window", "Conformal rows"):
        assert raw not in run, raw
    short = dataclasses.replace(with_tests, meta={**with_tests.meta, "conformal_rows_without_95_band": {"ets": 12}})
    run = _section(render_html(short, tmp_path / "short.html").read_text(encoding="utf-8"), "run")
    assert "no 95% band on 12 ets rows" in run


def test_absent_tables_give_no_blocks_and_no_error(report_input, tmp_path):
    assert report_input.mcs is None and report_input.spa is None and report_input.interval_tests is None
    html = render_html(report_input, tmp_path / "r.html").read_text(encoding="utf-8")
    assert 'id="intervals"' not in html and "Interval calibration" not in html
    assert 'id="multiple-testing"' not in html and 'class="spa"' not in html
    assert html.count("<section id=") == len(SECTIONS)
    empty = dataclasses.replace(
        report_input,
        interval_tests=pd.DataFrame(columns=list(INTERVAL_TEST_COLUMNS)),
        mcs=pd.DataFrame(columns=list(MCS_COLUMNS)),
        spa=pd.DataFrame(columns=list(SPA_COLUMNS)),
    )
    context = build_context(empty, title="t")
    assert context["intervals"] is None and context["significance"]["multiple"] is None


def test_untested_mcs_and_spa_say_so(with_tests, tmp_path):
    models = [str(m) for m in with_tests.leaderboard[MODEL]]
    data = dataclasses.replace(with_tests, mcs=_mcs(models, tested=False), spa=_spa(p_consistent=np.nan))
    html = render_html(data, tmp_path / "r.html").read_text(encoding="utf-8")
    block = _section(html, "significance")
    assert "The Model Confidence Set was not tested" in block
    assert "over 2 models and 6 folds: not tested" in block


def test_only_spa_renders_the_block_without_a_table(with_tests):
    context = build_context(dataclasses.replace(with_tests, mcs=None), title="t")
    multiple = context["significance"]["multiple"]
    assert multiple["mcs"] is None and not multiple["mcs_shown"] and len(multiple["spa"]) == 1


def test_the_time_table_counts_the_calibration_origins(with_tests, tmp_path):
    meta = {**with_tests.meta, "calibration_seconds": {"ets": 12.5}}
    html = render_html(dataclasses.replace(with_tests, meta=meta), tmp_path / "t.html").read_text(encoding="utf-8")
    run = _section(html, "run")
    assert "calibration origins</th>" in run and "12.5 s" in run
    assert "Calibration seconds" not in run  # a column of the time table, not a raw fact
    plain = _section(render_html(with_tests, tmp_path / "p.html").read_text(encoding="utf-8"), "run")
    assert "calibration origins</th>" not in plain


def test_the_run_section_says_what_a_global_models_rows_mean(with_tests, tmp_path):
    meta = {**with_tests.meta, "global_models": ["global_lstm"]}
    run = _section(render_html(dataclasses.replace(with_tests, meta=meta), tmp_path / "g.html").read_text(), "run")
    assert "<dt>Global models</dt><dd>global_lstm: one network across all" in run
    assert "counts each refit once per series and shares its seconds evenly" in run
    assert "Global models" not in _section(render_html(with_tests, tmp_path / "n.html").read_text(), "run")
