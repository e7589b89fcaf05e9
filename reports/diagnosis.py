"""'Did covariates or tuning help?': the diagnosis table, one sentence per model, and the chosen hyperparameters.

Reads the diagnosis table (common.schema DIAGNOSIS_COLUMNS, built by backtest.diagnosis) and the tuning table
(TUNING_COLUMNS); renders them for the HTML report (Table view-models) and as Markdown for the Prefect artifact.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Any

import pandas as pd

from common.schema import (
    BASE_MODEL,
    BEATS_NAIVE_DM,
    FOLD,
    ID,
    KIND,
    MASE,
    MASE_CHANGE,
    MODEL,
    N_FAILURES,
    NAIVE,
    P_VS_NAIVE,
    P_VS_PLAIN,
    PARAMS,
    TRIALS,
    VALIDATION_MAE,
)
from reports.format import DASH, fmt_num, fmt_p, is_missing
from reports.tables import Cell, Column, Table, build_table

TITLE = "Did covariates or tuning help?"
PLAIN = "plain"
# What each treatment is called in a sentence (the kinds of models.variants.KINDS, in display order).
SUBJECTS = {"+cov": "covariates", "+tuned": "tuning", "+cov+tuned": "covariates with tuning"}
KIND_ORDER = (PLAIN, *SUBJECTS)
UNCHANGED_PCT = 0.05  # a MASE change below this many percent reads as "unchanged"
MAX_TUNING_ROWS = 200


def has_diagnosis(diagnosis: pd.DataFrame | None) -> bool:
    """True when the run had variants to diagnose (a run without them renders as before, with no section)."""
    return diagnosis is not None and not diagnosis.empty and BASE_MODEL in diagnosis.columns


def naive_in(leaderboard: pd.DataFrame) -> bool:
    """Whether the naive reference ran (so the sentences can say 'no naive baseline' instead of 'too few folds')."""
    return MODEL in leaderboard.columns and NAIVE in set(leaderboard[MODEL].astype(str))


def diagnosis_sentences(diagnosis: pd.DataFrame, *, alpha: float = 0.05, naive_ran: bool = True) -> list[str]:
    """One sentence per base model: did covariates help, did tuning help, does any variant beat naive."""
    if not has_diagnosis(diagnosis):
        return []
    return [
        _sentence(str(base), group, alpha=alpha, naive_ran=naive_ran)
        for base, group in diagnosis.groupby(BASE_MODEL, sort=False)
    ]


def _sentence(base: str, rows: pd.DataFrame, *, alpha: float, naive_ran: bool) -> str:
    by_kind = {str(r[KIND]): r for _, r in rows.iterrows()}
    plain = by_kind.get(PLAIN)
    clauses = [_clause(base, kind, by_kind[kind], plain, alpha) for kind in SUBJECTS if kind in by_kind]
    clauses.append(_naive_clause(rows, alpha=alpha, naive_ran=naive_ran))
    return f"{base}: " + "; ".join(clauses) + "."


def _clause(base: str, kind: str, row: pd.Series, plain: pd.Series | None, alpha: float) -> str:
    subject, name = SUBJECTS[kind], str(row[MODEL])
    failures = int(row[N_FAILURES]) if not is_missing(row[N_FAILURES]) else 0
    if is_missing(row[MASE]):
        return f"{subject} could not be judged: {name} produced no forecasts ({failures} failed units)"
    if plain is None or is_missing(plain[MASE]):
        return f"{subject} could not be judged: the plain {base} produced no forecasts to compare with"
    change, p = _num(row[MASE_CHANGE]), _num(row[P_VS_PLAIN])
    pct = change * 100
    by = f"MASE by {_pct(pct)}"
    moved = abs(pct) >= UNCHANGED_PCT
    details = [_p_text(p)]
    if math.isnan(p):
        what = (f"improved {by}" if pct < 0 else f"worsened {by}") if moved else "left MASE unchanged"
        details = ["too few folds to test"]
    elif p < alpha:
        if moved and pct < 0:
            what = f"improved {by}"
        else:
            what = "lowered the squared error significantly" + (f" but worsened {by}" if moved else ", MASE unchanged")
    elif moved and pct > 0:
        what = f"gave no significant gain and worsened {by}"
    else:
        what = "gave no significant gain"
        if moved:
            details.insert(0, f"MASE {_pct(pct)} lower")
    if failures:
        details.append(
            f"{name} failed on {failures} series-fold unit{'s' if failures != 1 else ''}, compared on the rest"
        )
    return f"{subject} {what} ({'; '.join(details)})"


def _naive_clause(rows: pd.DataFrame, *, alpha: float, naive_ran: bool) -> str:
    if not naive_ran:
        return f"no {NAIVE} baseline was run, so nothing was tested against it"
    scored = rows[rows[MASE].notna() & (rows[MODEL].astype(str) != NAIVE)]
    winners = scored[scored[BEATS_NAIVE_DM].fillna(False).astype(bool)]
    if len(winners):
        named = [f"{m} ({_p_text(p)})" if not is_missing(p) else str(m) for m, p in zip(*_cols(winners), strict=True)]
        return f"{_join(named)} {'beats' if len(named) == 1 else 'beat'} {NAIVE}"
    tested = scored[scored[P_VS_NAIVE].notna()]
    if tested.empty:
        return f"too few folds to test against {NAIVE}"
    best = tested.loc[tested[P_VS_NAIVE].astype(float).idxmin()]
    p = float(best[P_VS_NAIVE])
    # The leaderboard's flag needs every horizon step; the p shown is the verdict's (first step or pooled).
    caveat = ", but not at every horizon step" if p < alpha else ""
    if len(scored) == 1:
        return f"it does not beat {NAIVE} ({_p_text(p)}{caveat})"
    who = "neither" if len(scored) == 2 else "none"
    return f"{who} beats {NAIVE} (smallest {_p_text(p)}, {best[MODEL]}{caveat})"


def _cols(frame: pd.DataFrame) -> tuple[list[str], list[Any]]:
    return [str(m) for m in frame[MODEL]], list(frame[P_VS_NAIVE])


# ---------------------------------------------------------------- the model x kind table


def _kinds(diagnosis: pd.DataFrame) -> list[str]:
    present = set(diagnosis[KIND].astype(str))
    return [k for k in KIND_ORDER if k in present]


def _columns(kinds: Iterable[str]) -> list[tuple[str, str, str]]:
    """(kind, field, label) of every column after the model's."""
    out = []
    for kind in kinds:
        out.append((kind, MASE, f"{kind} MASE"))
        if kind != PLAIN:
            out.append((kind, P_VS_PLAIN, f"{kind} p vs plain"))
        out.append((kind, P_VS_NAIVE, f"{kind} p vs naive"))
    return out


def _cell_text(row: pd.Series | None, field: str) -> str:
    if row is None:
        return DASH
    if field == MASE:
        text = fmt_num(row[MASE])
        change = _num(row[MASE_CHANGE])
        if not math.isnan(change) and not is_missing(row[MASE]):
            pct = change * 100
            text += f" ({'−' if pct < 0 else '+'}{_pct(pct)})" if abs(pct) >= UNCHANGED_PCT else " (±0%)"
        return text
    return fmt_p(row[field], digits=2)


def _significant(row: pd.Series | None, field: str, alpha: float) -> bool:
    if row is None or field == MASE:
        return False
    if field == P_VS_NAIVE:
        return bool(row[BEATS_NAIVE_DM]) if not is_missing(row[BEATS_NAIVE_DM]) else False
    p = _num(row[field])
    return not math.isnan(p) and p < alpha


def _grid(diagnosis: pd.DataFrame) -> list[tuple[str, dict[str, pd.Series]]]:
    return [
        (str(base), {str(r[KIND]): r for _, r in group.iterrows()})
        for base, group in diagnosis.groupby(BASE_MODEL, sort=False)
    ]


def diagnosis_view(diagnosis: pd.DataFrame, *, alpha: float = 0.05) -> Table | None:
    """The model x {plain, +cov, +tuned, +cov+tuned} table: MASE (change vs plain) and the two p-values per cell."""
    if not has_diagnosis(diagnosis):
        return None
    kinds = _kinds(diagnosis)
    spec = _columns(kinds)
    columns = [Column(MODEL, "")] + [
        Column(f"{kind}|{field}", _SHORT[field], _TITLES[field], numeric=True) for kind, field, _ in spec
    ]
    groups = [("model", 1)] + [(kind, sum(1 for k, _, _ in spec if k == kind)) for kind in kinds]
    rows = []
    for base, cells in _grid(diagnosis):
        row = [Cell(base)]
        for kind, field, _ in spec:
            r = cells.get(kind)
            text = _cell_text(r, field)
            classes = "num" + (" na" if text == DASH else "") + (" good" if _significant(r, field, alpha) else "")
            row.append(Cell(text, classes))
        rows.append(row)
    return Table(columns, rows, header_groups=groups)


_SHORT = {MASE: "MASE", P_VS_PLAIN: "p vs plain", P_VS_NAIVE: "p vs naive"}
_TITLES = {
    MASE: "The leaderboard's MASE; in brackets the change against the plain model's.",
    P_VS_PLAIN: "One-sided Diebold–Mariano (HLN) p-value: small means the variant's loss is below the plain model's.",
    P_VS_NAIVE: "One-sided Diebold–Mariano (HLN) p-value against naive, as in the verdict; marked when it beats naive.",
}


def diagnosis_markdown(
    diagnosis: pd.DataFrame, *, leaderboard: pd.DataFrame | None = None, alpha: float = 0.05, title: str = TITLE
) -> str:
    """The table and the sentences as Markdown (the Prefect artifact); empty when the run had no variants.

    `leaderboard` tells whether naive ran (without it, the sentences assume it did).
    """
    if not has_diagnosis(diagnosis):
        return ""
    naive_ran = naive_in(leaderboard) if leaderboard is not None else True
    # Long, one row per variant: the report's model x kind grid is 12 columns wide, which the Prefect UI clips.
    lines = [f"# {_escape(title)}", ""]
    lines += ["| model | variant | MASE (vs plain) | p vs plain | p vs naive |", "|:---|:---|---:|---:|---:|"]
    for base, cells in _grid(diagnosis):
        for kind in KIND_ORDER:
            row = cells.get(kind)
            if row is None:
                continue
            texts = []
            for field in (MASE, P_VS_PLAIN, P_VS_NAIVE):
                text = DASH if field == P_VS_PLAIN and kind == PLAIN else _escape(_cell_text(row, field))
                texts.append(f"**{text}**" if _significant(row, field, alpha) else text)
            lines.append("| " + " | ".join([_escape(base), _escape(kind), *texts]) + " |")
    lines += ["", *[f"- {_escape(s)}" for s in diagnosis_sentences(diagnosis, alpha=alpha, naive_ran=naive_ran)]]
    lines += [
        "",
        f"_p: one-sided Diebold–Mariano (HLN) test that the variant's loss is lower, on the (series, fold, step) rows "
        f"both forecast; bold: significant at {alpha * 100:g}% (against naive: the leaderboard's rule)._",
    ]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- chosen hyperparameters


def tuning_choices(tuning: pd.DataFrame | None) -> pd.DataFrame | None:
    """One row per (series, model, distinct choice) with the folds it covered, in fold order; None without tuning.

    Folds between refits repeat their refit's choice, so a run with many folds collapses to a few rows.
    """
    if tuning is None or tuning.empty or not {ID, MODEL, FOLD, PARAMS}.issubset(tuning.columns):
        return None
    t = tuning.assign(**{ID: tuning[ID].astype(str), MODEL: tuning[MODEL].astype(str)})
    t = t.assign(_params=t[PARAMS].map(_params_text)).sort_values([ID, MODEL, FOLD], kind="stable")
    agg: dict[str, Any] = {"folds": (FOLD, _fold_ranges), "n_folds": (FOLD, "nunique")}
    if TRIALS in t.columns:
        agg[TRIALS] = (TRIALS, "max")
    if VALIDATION_MAE in t.columns:
        agg[VALIDATION_MAE] = (VALIDATION_MAE, "mean")
    out = t.groupby([ID, MODEL, "_params"], sort=False).agg(**agg).reset_index()
    return out.rename(columns={"_params": PARAMS})


def tuning_view(tuning: pd.DataFrame | None) -> tuple[Table | None, int]:
    """The chosen-hyperparameters table for the report and how many rows were left out of it."""
    choices = tuning_choices(tuning)
    if choices is None:
        return None, 0
    table = build_table(
        choices.head(MAX_TUNING_ROWS),
        [ID, MODEL, PARAMS, "folds", TRIALS, VALIDATION_MAE],
        labels={
            ID: "series",
            MODEL: "model",
            PARAMS: "chosen parameters",
            "folds": "folds",
            TRIALS: "trials",
            VALIDATION_MAE: "validation MAE",
        },
        formatters={"folds": str, PARAMS: str},
        group=ID,
    )
    return table, max(0, len(choices) - MAX_TUNING_ROWS)


def _params_text(value: Any) -> str:
    """'{"units": 32, "window": 20}' -> 'units 32 · window 20' (text that is not a JSON object as it is)."""
    if is_missing(value):
        return DASH
    try:
        params = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        return str(value)
    if not isinstance(params, dict):
        return str(value)
    if not params:
        return "defaults"
    return " · ".join(f"{k} {_param_text(v)}" for k, v in params.items())


def _param_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)  # True, 'tanh', None: as the constructor takes them
    return fmt_num(value)


def _fold_ranges(folds: pd.Series) -> str:
    """[0, 1, 2, 5, 7, 8] -> '0–2, 5, 7–8'."""
    values = sorted({int(f) for f in folds})
    parts: list[str] = []
    start = prev = values[0]
    for f in [*values[1:], None]:
        if f is not None and f == prev + 1:
            prev = f
            continue
        parts.append(str(start) if start == prev else f"{start}–{prev}")
        if f is not None:
            start = prev = f
    return ", ".join(parts)


# ---------------------------------------------------------------- text helpers


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _pct(pct: float) -> str:
    """An absolute percentage with two significant digits: 3%, 3.5%, 0.12%, 13%."""
    a = abs(pct)
    return f"{a:.0f}%" if a >= 10 else f"{a:.2g}%"


def _p_text(p: float) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _escape(text: str) -> str:
    """Neutralise Markdown table pipes and raw HTML from user data (model names)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
