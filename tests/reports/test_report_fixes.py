"""What a reader sees after the issue #18 fixes: readable error charts, one equity legend, honest trading highlights,
row counts apart from findings, band traces without markers, a run section without placeholders, the new scores."""

from __future__ import annotations

import dataclasses
import json
import re

import pandas as pd
import pytest

from common.schema import (
    BUY_AND_HOLD,
    DS,
    ID,
    IN_MCS,
    MAX_DRAWDOWN,
    MODEL,
    NAIVE,
    OOS_R2,
    PINBALL,
    RULE,
    SCALED_CRPS,
    TURNOVER,
)
from reports.charts import equity_grid, fold_chart, forecast_chart, horizon_chart
from reports.html import build_context, render_html

ORDER = ["ets", NAIVE, "prophet"]


def _figure_json(html: str, div_id: str) -> tuple[list[dict], dict]:
    """The data and layout of the plotly figure rendered into `div_id`."""
    match = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*(\[.*?\]),\s*(\{{.*?\}}),\s*\{{"displaylogo', html, re.S)
    assert match, f"no figure {div_id}"
    return json.loads(match.group(1)), json.loads(match.group(2))


def _section(html: str, section: str) -> str:
    start = html.index(f'<section id="{section}">')
    return html[start : html.index("</section>", start)]


def _with_mcs(leaderboard: pd.DataFrame, members: set[str]) -> pd.DataFrame:
    return leaderboard.assign(**{IN_MCS: leaderboard[MODEL].isin(members)})


@pytest.fixture(scope="module")
def mcs_run(report_input, tmp_path_factory):
    """The default input with the leaderboard's new columns: ets alone in the MCS, ordered by MASE."""
    lb = _with_mcs(report_input.leaderboard, {"ets"}).sort_values("mase").reset_index(drop=True)
    lb = lb.assign(**{SCALED_CRPS: [0.9, 0.7, 3.0], PINBALL: [0.2, 0.1, 0.5], OOS_R2: [-0.02, 0.01, -0.3]})
    data = dataclasses.replace(report_input, leaderboard=lb)
    html = render_html(data, tmp_path_factory.mktemp("mcs") / "report.html").read_text(encoding="utf-8")
    return data, html


# ---------------------------------------------------------------- 1. error charts


def test_error_charts_use_a_log_axis_and_show_the_mcs_and_naive_first(mcs_run):
    _, html = mcs_run
    for div_id, section in (("fig-horizon", "horizon"), ("fig-folds", "folds")):
        data, layout = _figure_json(html, div_id)
        assert layout["yaxis"]["type"] == "log"
        visible = {t["name"]: t["visible"] for t in data}
        assert visible == {"ets": True, NAIVE: True, "prophet": "legendonly"}
        caption = _section(html, section)
        shown = re.search(r"Shown at first: (.*?) \(the Model Confidence Set and naive\)", caption)
        assert "log scale" in caption and shown and set(shown.group(1).split(", ")) == {"ets", NAIVE}


def test_without_in_mcs_every_model_is_shown(report_input):
    fig = horizon_chart(report_input.metrics, ORDER)
    assert fig["layout"]["yaxis"]["type"] == "log"
    assert {t["visible"] for t in fig["data"]} == {True}
    folds = fold_chart(report_input.metrics, report_input.forecasts, report_input.fold_info, ORDER, highlighted=None)
    assert {t["visible"] for t in folds["data"]} == {True}
    context = build_context(report_input, title="t")
    assert context["errors_shown"] is None


# ---------------------------------------------------------------- 2. equity curves


def _staggered_equity(report_input) -> pd.DataFrame:
    """The fixture's equity with the first series ending two months after the others (as AAPL's did)."""
    eq = report_input.equity.copy()
    first = eq[ID].iloc[0]
    later = eq[eq[ID] == first].assign(**{DS: lambda f: f[DS] + pd.Timedelta(days=60)})
    return pd.concat([eq[eq[ID] != first], later], ignore_index=True)


def test_equity_grid_has_one_legend_entry_per_model_and_each_axis_covers_its_series(report_input):
    eq = _staggered_equity(report_input)
    series = list(dict.fromkeys(eq[ID]))
    fig = equity_grid(eq, series, ORDER)
    entries = [t["name"] for t in fig["data"] if t.get("showlegend", True)]
    assert len(entries) == len(set(entries)) and set(entries) == {*ORDER, "buy & hold"}
    assert all(t["legendgroup"] == t["name"] for t in fig["data"])
    layout = fig["layout"]
    assert layout["legend"]["x"] > 1  # beside the grid, never over a curve
    for i, uid in enumerate(series):
        suffix = "" if i == 0 else str(i + 1)
        last = eq.loc[eq[ID] == uid, DS].max()
        axis = layout[f"xaxis{suffix}"]
        assert "matches" not in axis and pd.Timestamp(axis["range"][1]) >= last
        traces = [t for t in fig["data"] if t["xaxis"] == f"x{suffix}"]
        assert traces and max(pd.Timestamp(x) for t in traces for x in t["x"]) == last


def test_equity_grid_draws_buy_and_hold_from_the_trading_column(report_input):
    """Runs store buy-and-hold beside each curve (`buy_hold`), not as rows of its own."""
    eq = report_input.equity
    hold = eq[eq[MODEL] == BUY_AND_HOLD].set_index([ID, DS])["equity"]
    curves = eq[eq[MODEL] != BUY_AND_HOLD]
    curves = curves.assign(buy_hold=[hold[(u, d)] for u, d in zip(curves[ID], curves[DS], strict=True)])
    fig = equity_grid(curves, list(dict.fromkeys(eq[ID])), ORDER)
    holds = [t for t in fig["data"] if t["name"] == "buy & hold"]
    assert len(holds) == eq[ID].nunique() and sum(t["showlegend"] for t in holds) == 1


def test_the_report_has_one_equity_figure_with_the_rule_styles_explained(report_input, tmp_path):
    data = dataclasses.replace(
        report_input,
        equity=pd.concat(
            [report_input.equity, report_input.equity.query(f"{MODEL} != @BUY_AND_HOLD").assign(**{RULE: "flip"})]
        ),
    )
    html = render_html(data, tmp_path / "r.html").read_text(encoding="utf-8")
    trading = _section(html, "trading")
    assert 'id="fig-equity"' in trading and 'id="fig-equity-1"' not in trading
    assert "Line style marks the rule: sign solid, flip dashed" in trading
    traces, _ = _figure_json(html, "fig-equity")
    entries = [t["name"] for t in traces if t.get("showlegend", True)]
    assert len(entries) == len(set(entries))


# ---------------------------------------------------------------- 3. trading table


def test_a_rule_that_never_trades_is_not_highlighted_and_returns_are_percentages(report_input, tmp_path):
    tr = report_input.trading.copy()
    idle = tr[MODEL] == NAIVE
    tr.loc[idle, [MAX_DRAWDOWN, TURNOVER, "cum_return"]] = 0.0
    tr.loc[idle, "hit_rate"] = float("nan")
    tr["excess_return"] = tr["cum_return"] - tr["buy_hold_return"]
    html = render_html(dataclasses.replace(report_input, trading=tr), tmp_path / "r.html").read_text(encoding="utf-8")
    trading = _section(html, "trading")
    naive_rows = re.findall(r"<tr[^>]*><td>[^<]*</td><td>naive</td>.*?</tr>|<tr[^>]*><td>naive</td>.*?</tr>", trading)
    assert naive_rows and all("best" not in row for row in naive_rows)
    assert all(">0%</td>" in row for row in naive_rows)  # its zero drawdown and return, as percentages
    assert 'class="num best"' in trading  # the models that traded still compete
    ets = tr[(tr[MODEL] == "ets")].iloc[0]
    assert f"{ets['cum_return'] * 100:.3g}%" in trading and "Excess return" in trading
    assert "rows with zero turnover" in trading


# ---------------------------------------------------------------- 4. data quality


def test_row_counts_are_shown_as_sizes_not_findings(report_input, tmp_path):
    q = report_input.quality
    counts = pd.DataFrame(
        [
            {ID: u, "check": check, "count": n, "detail": detail}
            for u in q[ID].unique()
            for check, n, detail in (
                ("rows_in", 3270, ""),
                ("rows_out", 2015, "2005-03-01 .. 2013-03-01"),
                ("target", 2015, "adj_close"),
                ("calendar", 2015, "XNYS (assumed)"),
            )
        ]
    )
    data = dataclasses.replace(report_input, quality=pd.concat([counts, q], ignore_index=True))
    html = render_html(data, tmp_path / "r.html").read_text(encoding="utf-8")
    quality = _section(html, "quality")
    assert "Rows in → rows out" in quality and "3,270 → 2,015" in quality and "XNYS (assumed)" in quality
    findings = quality[quality.index("<h3>Findings</h3>") :]
    assert "rows_in" not in findings and "rows_out" not in findings and "calendar" not in findings
    assert "large_moves" in findings
    assert "1 of 8 found something" in quality  # 4 checks x 2 series; the row counts are not checks


# ---------------------------------------------------------------- 5. bands


def test_band_traces_draw_lines_only(report_input):
    fc = report_input.forecasts
    fig = forecast_chart(fc, fc[ID].iloc[0], ORDER)
    bands = [t for t in fig["data"] if "fill" in t]
    assert bands and all(t["mode"] == "lines" and t["line"]["width"] == 0 for t in bands)


# ---------------------------------------------------------------- 6. run section


def test_run_section_shows_the_resolved_plan_without_placeholders(report_input, tmp_path):
    plan = {
        "first_cutoff": None,
        "gap": 0,
        "horizon": 5,
        "min_train_size": None,
        "step": 5,
        "train_size": None,
        "window_type": "expanding",
        "windows": 6,
    }
    data = dataclasses.replace(report_input, meta={**report_input.meta, "plan": plan})
    html = render_html(data, tmp_path / "r.html").read_text(encoding="utf-8")
    run = _section(html, "run")
    fold_plan = re.search(r"<dt>Fold plan</dt><dd>(.*?)</dd>", run).group(1)
    first = pd.to_datetime(report_input.fold_info["cutoff"]).min().strftime("%Y-%m-%d")
    assert f"first cutoff {first}" in fold_plan and "–" not in fold_plan and "min train size" not in fold_plan
    # Fold 0 trains on the fixture's first 60 business days, counted on the ticker's calendar (XNYS, assumed for a
    # plain symbol): New Year's Day, Martin Luther King Day and Presidents' Day are no sessions.
    assert "train size 57 sessions at fold 0" in fold_plan
    assert fold_plan.startswith("horizon 5 · step 5 · windows 6")


def test_a_sliding_plan_shows_its_own_train_size(report_input, tmp_path):
    plan = {"horizon": 5, "step": 5, "windows": 6, "window_type": "sliding", "train_size": 40, "min_train_size": 30}
    data = dataclasses.replace(report_input, meta={**report_input.meta, "plan": plan})
    run = _section(render_html(data, tmp_path / "r.html").read_text(encoding="utf-8"), "run")
    fold_plan = re.search(r"<dt>Fold plan</dt><dd>(.*?)</dd>", run).group(1)
    assert "train size 40 sessions" in fold_plan and "min train size 30 sessions" in fold_plan


# ---------------------------------------------------------------- 7. leaderboard columns


def test_leaderboard_labels_and_ranks_the_new_scores_in_the_given_order(mcs_run):
    data, html = mcs_run
    board = _section(html, "leaderboard")
    overall = board[: board.index("<h3>Per series</h3>")]
    for label in ("scaled CRPS", "pinball", "OOS R²", "in MCS"):
        assert f">{label}</th>" in overall
    assert "in_mcs" not in overall and "oos_r2" not in overall
    rows = re.findall(r"<tr[^>]*>(<td.*?)</tr>", overall)
    assert [re.search(r"<td>(.*?)</td>", r).group(1) for r in rows] == list(data.leaderboard[MODEL])
    header = re.findall(r"<th[^>]*>(.*?)</th>", overall)
    cells = [re.findall(r"<td([^>]*)>(.*?)</td>", r) for r in rows]

    def best(label: str) -> list[str]:
        col = header.index(label)
        return [data.leaderboard[MODEL][i] for i, row in enumerate(cells) if "best" in row[col][0]]

    lb = data.leaderboard.set_index(MODEL)
    assert best("scaled CRPS") == [lb[SCALED_CRPS].idxmin()]
    assert best("pinball") == [lb[PINBALL].idxmin()]
    assert best("OOS R²") == [lb[OOS_R2].idxmax()]
    mcs = header.index("in MCS")
    assert {data.leaderboard[MODEL][i]: row[mcs][1] for i, row in enumerate(cells)} == {
        "ets": "✓",
        NAIVE: "",
        "prophet": "",
    }
