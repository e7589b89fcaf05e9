"""The one-sentence verdict of a backtest: best model, its margin over naive, and whether anything beats naive."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from common.schema import (
    BEATS_NAIVE_DM,
    LOSS,
    MASE,
    MEAN_RANK,
    MODEL,
    N_OBS,
    NAIVE,
    P_LESS,
    P_VALUE,
    REFERENCE,
    STAT,
    H,
)
from reports.data import model_order
from reports.format import fmt_num, fmt_p

PREFERRED_LOSS = "squared"
MUCH_WORSE_RATIO = 1.5  # MASE at least this multiple of naive's earns a warning in the verdict
DM_NAME = "Diebold–Mariano, HLN-corrected"


@dataclass(frozen=True)
class DmResult:
    """One model's test against the naive reference, on the loss and horizon the verdict uses."""

    model: str
    p_less: float  # one-sided: H1 = the model's loss is lower than naive's
    significant: bool
    loss: str | None = None
    h: float | None = None  # None: pooled over steps
    stat: float = float("nan")
    p_value: float = float("nan")  # two-sided
    n: float = float("nan")


def dm_versus_naive(
    leaderboard: pd.DataFrame, dm: pd.DataFrame | None, *, alpha: float = 0.05, reference: str = NAIVE
) -> dict[str, DmResult]:
    """Per model, whether it beats `reference` at level `alpha`.

    The test row is the squared loss (else the first loss present) on the pooled horizon (h missing or 0) when the
    backtest wrote one, else the smallest h. When the dm table is absent, the leaderboard's beats_naive_dm decides.
    """
    out: dict[str, DmResult] = {}
    if dm is not None and not dm.empty and {MODEL, REFERENCE}.issubset(dm.columns):
        rows = dm[(dm[REFERENCE].astype(str) == reference) & (dm[MODEL].astype(str) != reference)]
        if LOSS in rows.columns and len(rows):
            losses = rows[LOSS].astype(str)
            rows = rows[losses == (PREFERRED_LOSS if (losses == PREFERRED_LOSS).any() else losses.iloc[0])]
        for model, group in rows.groupby(MODEL, sort=False):
            row = _pooled_row(group)
            p = _one_sided_p(row)
            h = pd.to_numeric(pd.Series([row.get(H)]), errors="coerce").iloc[0]
            out[str(model)] = DmResult(
                str(model),
                p,
                bool(p == p and p < alpha),
                loss=str(row[LOSS]) if LOSS in row.index else None,
                h=None if pd.isna(h) or h == 0 else float(h),
                stat=_float(row.get(STAT)),
                p_value=_float(row.get(P_VALUE)),
                n=_float(row.get(N_OBS)),
            )
    if leaderboard is not None and not leaderboard.empty and BEATS_NAIVE_DM in leaderboard.columns:
        # The backtest's own flag wins where it exists: it is the definition the rest of the pipeline uses.
        for model, flag in zip(leaderboard[MODEL].astype(str), leaderboard[BEATS_NAIVE_DM], strict=True):
            if model == reference or pd.isna(flag):
                continue
            out[model] = (
                replace(out[model], significant=bool(flag))
                if model in out
                else DmResult(model, float("nan"), bool(flag))
            )
    return out


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def _pooled_row(group: pd.DataFrame) -> pd.Series:
    if H not in group.columns:
        return group.iloc[0]
    h = pd.to_numeric(group[H], errors="coerce")
    pooled = group[h.isna() | (h == 0)]
    return pooled.iloc[0] if len(pooled) else group.loc[h.idxmin()]


def _one_sided_p(row: pd.Series) -> float:
    if P_LESS in row.index and pd.notna(row[P_LESS]):
        return float(row[P_LESS])
    if P_VALUE in row.index and pd.notna(row[P_VALUE]):
        # A two-sided p-value only counts when the statistic points the right way (model loss below naive's).
        stat = float(row[STAT]) if STAT in row.index and pd.notna(row[STAT]) else 0.0
        return float(row[P_VALUE]) / 2 if stat < 0 else 1.0
    return float("nan")


def verdict(leaderboard: pd.DataFrame, dm: pd.DataFrame | None, *, alpha: float = 0.05, reference: str = NAIVE) -> str:
    """One plain-English sentence: the best model, its MASE margin over naive, and whether anything beats naive."""
    order = model_order(leaderboard)
    if not order:
        return "No model produced forecasts, so there is nothing to compare; see the failures table."
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).drop_duplicates(MODEL).set_index(MODEL)
    mase = lb[MASE].astype(float) if MASE in lb.columns else pd.Series(float("nan"), index=lb.index)
    best = order[0]
    level = f"at the {alpha * 100:g}% level"

    if reference not in lb.index:
        lead = _best_clause(best, lb, mase)
        return f"{lead}; no {reference} baseline was run, so nothing was tested against the random walk."

    naive_mase = float(mase[reference])
    results = dm_versus_naive(leaderboard, dm, alpha=alpha, reference=reference)
    winners = [m for m in order if m in results and results[m].significant]

    if best == reference:
        lead = f"{reference} ranks best{_rank_detail(best, lb, mase)}"
    else:
        lead = _best_clause(best, lb, mase) + _margin(float(mase[best]), naive_mase, reference)

    if not winners:
        joiner = "and" if best == reference else "but"
        usual = "the usual outcome on daily prices"
        significance = f"{joiner} no model beats the {reference} random walk {level} ({DM_NAME}), {usual}"
    else:
        joiner = "and" if best in winners else "but"
        subject = "it" if winners == [best] else _join(winners)
        verb = "beats" if len(winners) == 1 else "beat"
        p_values = [_p_text(results[m].p_less) for m in winners if results[m].p_less == results[m].p_less]
        detail = f"; {_join(p_values)}" if len(p_values) == len(winners) else ""
        only = "only " if len(winners) == 1 and best not in winners else ""
        significance = f"{joiner} {only}{subject} {verb} the {reference} random walk {level} ({DM_NAME}{detail})"

    worse = [m for m in order if m != reference and naive_mase > 0 and mase.get(m, 0) >= MUCH_WORSE_RATIO * naive_mase]
    warning = ""
    if worse:
        ratios = [f"{float(mase[m]) / naive_mase:.1f}×" for m in worse]
        if len(worse) == 1:
            warning = f"; {worse[0]}'s MASE is {ratios[0]} {reference}'s"
        else:
            named = _join([f"{m} ({r})" for m, r in zip(worse, ratios, strict=True)])
            warning = f"; {named} have MASE far above {reference}'s"

    return f"{lead}, {significance}{warning}."


def _best_clause(best: str, lb: pd.DataFrame, mase: pd.Series) -> str:
    return f"{best} ranks best{_rank_detail(best, lb, mase)}"


def _rank_detail(model: str, lb: pd.DataFrame, mase: pd.Series) -> str:
    parts = []
    if MEAN_RANK in lb.columns and pd.notna(lb.at[model, MEAN_RANK]):
        parts.append(f"mean rank {fmt_num(lb.at[model, MEAN_RANK], digits=3)}")
    if pd.notna(mase.get(model)):
        parts.append(f"MASE {fmt_num(mase[model])}")
    return f" ({', '.join(parts)})" if parts else ""


def _margin(best_mase: float, naive_mase: float, reference: str) -> str:
    if pd.isna(best_mase) or pd.isna(naive_mase) or naive_mase <= 0:
        return ""
    pct = (best_mase / naive_mase - 1) * 100
    if abs(pct) < 0.05:
        return f", level with {reference}'s MASE"
    direction = "below" if pct < 0 else "above"
    return f", {fmt_num(abs(pct), digits=2)}% {direction} {reference}'s {fmt_num(naive_mase)}"


def _p_text(p: float) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
