"""The HTML report: every section, offline plotly.js, escaped user text, atomic writes, graceful absent tables."""

from __future__ import annotations

import re

import pandas as pd
import pytest

from common.errors import DataError
from common.schema import FOLD, ID
from reports.charts import forecast_chart
from reports.data import ReportInput
from reports.html import PLOTLY_JS, SECTION_IDS, SECTIONS, render_html

REMOTE_SCRIPT = re.compile(r"<script[^>]*\bsrc=[\"']?(https?:)?//", re.IGNORECASE)


@pytest.fixture(scope="module")
def rendered(report_input, tmp_path_factory):
    out = render_html(report_input, tmp_path_factory.mktemp("report") / "report.html")
    return out, out.read_text(encoding="utf-8")


def test_every_section_has_an_id_and_a_heading(rendered):
    _, html = rendered
    for section_id, heading in SECTIONS:
        assert f'<section id="{section_id}">' in html
        assert f"<h2>{heading}</h2>" in html
    assert html.index('id="verdict"') < html.index('id="run"') < html.index('id="leaderboard"')
    assert len(SECTION_IDS) == 11


def test_leaderboard_and_content(rendered):
    _, html = rendered
    leaderboard = html[html.index('<section id="leaderboard">') : html.index('<section id="significance">')]
    assert "<table" in leaderboard and ">MASE</th>" in leaderboard and ">Mean rank</th>" in leaderboard
    assert 'class="num best"' in leaderboard  # best per column is highlighted
    assert "MASE &lt; 1 means better than the in-sample naive forecast" in leaderboard  # captions are escaped too
    assert "no model beats the naive random walk at the 5% level" in html
    for figure in ("fig-horizon", "fig-forecast-0", "fig-forecast-1", "fig-folds", "fig-equity", "fig-dm-pairwise"):
        assert f'id="{figure}"' in html
    assert "optimisation did not converge" in html and "large_moves" in html and "refit every" in html


def test_opens_offline(rendered):
    out, html = rendered
    assert not REMOTE_SCRIPT.search(html) and "cdn.plot.ly" not in html
    assert f'<script src="{PLOTLY_JS}"' in html
    assert (out.parent / PLOTLY_JS).stat().st_size > 1_000_000
    assert sorted(p.name for p in out.parent.iterdir()) == [PLOTLY_JS, "report.html"]  # no temp files left
    assert out.stat().st_size < 400_000


def test_user_text_is_escaped(make_input, tmp_path):
    data = make_input(
        2,
        n_folds=2,
        tickers=("<script>alert(1)</script>", "005930"),
        models=("naive", "ets<img src=x onerror=alert(3)>", "prophet"),
        failure_message='<img src=x onerror="alert(2)"> fit failed & <b>gave up</b>',
    )
    html = render_html(data, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "<img src=x" not in html and "<b>gave up" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html  # still shown, as text
    assert "&lt;img src=x onerror=&#34;alert(2)&#34;&gt; fit failed &amp; &lt;b&gt;gave up&lt;/b&gt;" in html
    assert "005930" in html  # string tickers keep their leading zeros


def test_inline_plotlyjs_writes_a_single_file(report_input, tmp_path):
    minimal = ReportInput(
        forecasts=report_input.forecasts, metrics=report_input.metrics, leaderboard=report_input.leaderboard
    )
    out = render_html(minimal, tmp_path / "one.html", plotlyjs="inline")
    html = out.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["one.html"]
    assert not REMOTE_SCRIPT.search(html) and "<script src=" not in html and len(html) > 1_000_000


def test_absent_optional_tables_still_render_every_section(report_input, tmp_path):
    minimal = ReportInput(
        forecasts=report_input.forecasts, metrics=report_input.metrics, leaderboard=report_input.leaderboard
    )
    html = render_html(minimal, tmp_path / "r.html").read_text(encoding="utf-8")
    assert all(f'<section id="{s}">' in html for s in SECTION_IDS)
    assert "None: every model produced forecasts" in html and "was not run" in html
    assert "No data-quality summary was given." in html


def test_many_series_are_charted_up_to_max_series(make_input, tmp_path):
    data = make_input(3, n_series=3, n_folds=2)
    html = render_html(data, tmp_path / "r.html", max_series=2).read_text(encoding="utf-8")
    assert 'id="fig-forecast-1"' in html and 'id="fig-forecast-2"' not in html
    assert "1 more series are not charted" in html


def test_forecast_chart_keeps_only_the_last_folds(report_input):
    fc = report_input.forecasts
    uid = fc[ID].iloc[0]
    fig = forecast_chart(fc, uid, ["naive", "ets", "prophet"], last_folds=2)
    first_shown = pd.Timestamp(fc[fc[FOLD] == fc[FOLD].max() - 1]["ds"].min())
    xs = [pd.Timestamp(x) for trace in fig["data"] for x in trace["x"]]
    assert min(xs) >= first_shown
    shown = forecast_chart(fc, uid, ["ets", "naive"], visible=["naive"])["data"]
    hidden = {t["name"] for t in shown if t.get("visible", True) is True}
    assert "naive" in hidden and "actual" in hidden and "ets" not in hidden


def test_missing_columns_fail_with_the_table_name(report_input, tmp_path):
    bad = ReportInput(
        forecasts=report_input.forecasts.drop(columns=["cutoff"]),
        metrics=report_input.metrics,
        leaderboard=report_input.leaderboard,
    )
    with pytest.raises(DataError, match="forecasts table is missing columns \\['cutoff'\\]"):
        render_html(bad, tmp_path / "r.html")


def test_run_section_reads_as_sentences_not_raw_meta(report_input, tmp_path):
    """The run's extra facts get labels and readable values: the audit's sentence, only the model parameters set."""
    import dataclasses

    meta = {
        **report_input.meta,
        "leakage_audit": {"passed": True, "series": 2, "problems": [], "summary": "passed: training ends first"},
        "models": {"naive": {}, "prophet": {"warm_tol_rel_grad": None}},
        "trading_cost_bps": 5.0,
        "plan_fingerprint": "e1514fa489be",
    }
    html = render_html(dataclasses.replace(report_input, meta=meta), tmp_path / "r.html").read_text(encoding="utf-8")
    run = html[html.index('<section id="run">') : html.index('<section id="leaderboard">')]
    assert "Leakage audit" in run and "passed: training ends first" in run and "problems" not in run
    params = re.search(r"<dt>Model parameters</dt><dd>(.*?)</dd>", run).group(1)
    assert params == "prophet: warm tol rel grad –"  # naive ran with its defaults: not listed
    assert "5 bps per unit of turnover" in run and "Fold plan fingerprint" in run
    assert "leakage_audit" not in run and "trading_cost_bps" not in run
