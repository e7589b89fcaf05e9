"""The verdict of a backtest: the lowest-MASE model, its margin over naive, and whether anything beats naive."""

from __future__ import annotations

from dataclasses import dataclass, replace

import pandas as pd

from common.schema import (
    BEATS_NAIVE_DM,
    BENCHMARK,
    BEST_MODEL,
    IN_MCS,
    LOSS,
    MASE,
    MCS_P_VALUE,
    MCS_SIZE,
    MEAN_RANK,
    MODEL,
    N_MODELS,
    N_OBS,
    NAIVE,
    P_LESS,
    P_VALUE,
    REFERENCE,
    SPA_P_CONSISTENT,
    STAT,
    H,
)
from reports.data import model_order
from reports.format import fmt_num, fmt_p

PREFERRED_LOSS = "squared"
MUCH_WORSE_RATIO = 1.5  # MASE at least this multiple of naive's earns a warning in the verdict
DM_NAME = "Diebold–Mariano, HLN-corrected"
DM_SHORT = "Diebold–Mariano"
SPA_NAME = "Hansen's SPA test"
USUAL = "the usual outcome on daily prices"
DEFAULT_MCS_SIZE = 0.10  # stored MCS tables carry their size; this is for tables without the column
MAX_LISTED = 6  # a model confidence set larger than this is counted, not listed


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


def verdict(
    leaderboard: pd.DataFrame,
    dm: pd.DataFrame | None,
    *,
    alpha: float = 0.05,
    reference: str = NAIVE,
    mcs: pd.DataFrame | None = None,
    spa: pd.DataFrame | None = None,
) -> str:
    """The verdict in one or two plain sentences: who has the lowest MASE, and does anything truly beat naive?

    It names the lowest-MASE model and its margin over naive, the models in the model confidence set, and whether
    any model beats naive once the number of models tried is accounted for (Hansen's SPA test).
    `mcs` (MCS_COLUMNS) and `spa` (SPA_COLUMNS) are backtest.multiple_testing's tables; runs stored before them
    (or with too few folds to test) fall back to the per-model Diebold-Mariano tests in `dm`. A model whose MASE is
    above naive's is never called best: the leader is the lowest MASE, whatever the mean rank says.
    """
    order = model_order(leaderboard)
    if not order:
        return "No model produced forecasts, so there is nothing to compare; see the failures table."
    lb = leaderboard.assign(**{MODEL: leaderboard[MODEL].astype(str)}).drop_duplicates(MODEL).set_index(MODEL)
    mase = lb[MASE].astype(float) if MASE in lb.columns else pd.Series(float("nan"), index=lb.index)
    ranked = _by_mase(order, mase)
    leader = ranked[0]
    confidence_set = _mcs_clause(mcs, ranked)

    if reference not in lb.index:
        lead = _lead(leader, lb, mase) + (f", and {confidence_set}" if confidence_set else "")
        return f"{lead}; no {reference} baseline was run, so nothing was tested against the random walk."

    naive_mase = float(mase[reference])
    lead = _lead(leader, lb, mase) + (
        "" if leader == reference else _margin(float(mase[leader]), naive_mase, reference)
    )
    results = dm_versus_naive(leaderboard, dm, alpha=alpha, reference=reference)
    dm_winners = [m for m in ranked if m in results and results[m].significant]
    warning = _much_worse(ranked, mase, naive_mase, reference)
    spa_row = _spa_row(spa, reference)

    if spa_row is None and not confidence_set:  # a run stored before the multiple-testing tables: DM only
        return f"{lead}, {_dm_clause(leader, dm_winners, results, reference, alpha)}{warning}."
    first = f"{lead}, and {confidence_set}." if confidence_set else f"{lead}."
    if spa_row is None:
        second = _dm_clause(leader, dm_winners, results, reference, alpha).split(" ", 1)[1]  # drop the joiner
    else:
        second = _spa_clause(spa_row, dm_winners, results, reference, alpha)
    return f"{first} {_capitalise(second)}{warning}."


def _capitalise(clause: str) -> str:
    """Start a sentence with the clause; a model name keeps its own spelling ("ets beats ...")."""
    starts = ("no ", "nothing ", "it ", "only ", "at least ")
    return clause[0].upper() + clause[1:] if clause.startswith(starts) else clause


def _by_mase(order: list[str], mase: pd.Series) -> list[str]:
    """Models by MASE, lowest first; ties and models without a MASE keep the leaderboard's order (missing last)."""
    known = sorted((m for m in order if pd.notna(mase.get(m))), key=lambda m: float(mase[m]))  # stable sort
    return known + [m for m in order if m not in known]


def _lead(leader: str, lb: pd.DataFrame, mase: pd.Series) -> str:
    if pd.isna(mase.get(leader)):  # no MASE to go by: the mean rank leads, and nothing is called best
        rank = lb.at[leader, MEAN_RANK] if MEAN_RANK in lb.columns else float("nan")
        return f"{leader} leads on mean rank ({fmt_num(rank, digits=3)})" if pd.notna(rank) else f"{leader} leads"
    return f"{leader} has the lowest MASE{_rank_detail(leader, lb, mase)}"


def _rank_detail(model: str, lb: pd.DataFrame, mase: pd.Series) -> str:
    parts = []
    if pd.notna(mase.get(model)):
        parts.append(fmt_num(mase[model]))
    if MEAN_RANK in lb.columns and pd.notna(lb.at[model, MEAN_RANK]):
        parts.append(f"mean rank {fmt_num(lb.at[model, MEAN_RANK], digits=3)}")
    return f" ({', '.join(parts)})" if parts else ""


def _margin(best_mase: float, naive_mase: float, reference: str) -> str:
    if pd.isna(best_mase) or pd.isna(naive_mase) or naive_mase <= 0:
        return ""
    pct = (best_mase / naive_mase - 1) * 100
    if abs(pct) < 0.05:
        return f", level with {reference}'s MASE"
    direction = "below" if pct < 0 else "above"
    return f", {fmt_num(abs(pct), digits=2)}% {direction} {reference}'s {fmt_num(naive_mase)}"


def _much_worse(ranked: list[str], mase: pd.Series, naive_mase: float, reference: str) -> str:
    worse = [m for m in ranked if m != reference and naive_mase > 0 and mase.get(m, 0) >= MUCH_WORSE_RATIO * naive_mase]
    if not worse:
        return ""
    ratios = [f"{float(mase[m]) / naive_mase:.1f}×" for m in worse]
    if len(worse) == 1:
        return f"; {worse[0]}'s MASE is {ratios[0]} {reference}'s"
    named = _join([f"{m} ({r})" for m, r in zip(worse, ratios, strict=True)])
    return f"; {named} have MASE far above {reference}'s"


def _dm_clause(leader: str, winners: list[str], results: dict[str, DmResult], reference: str, alpha: float) -> str:
    """The per-model Diebold-Mariano answer, starting with its joiner ("and" / "but")."""
    level = f"at the {alpha * 100:g}% level"
    if not winners:
        joiner = "and" if leader == reference else "but"
        return f"{joiner} no model beats the {reference} random walk {level} ({DM_NAME}), {USUAL}"
    joiner = "and" if leader in winners else "but"
    subject = "it" if winners == [leader] else _join(winners)
    verb = "beats" if len(winners) == 1 else "beat"
    p_values = [_p_text(results[m].p_less) for m in winners if results[m].p_less == results[m].p_less]
    detail = f"; {_join(p_values)}" if len(p_values) == len(winners) else ""
    only = "only " if len(winners) == 1 and leader not in winners else ""
    return f"{joiner} {only}{subject} {verb} the {reference} random walk {level} ({DM_NAME}{detail})"


def _mcs_clause(mcs: pd.DataFrame | None, ranked: list[str]) -> str:
    """ "the 10% model confidence set holds naive, arima and ets", or "" when absent or not tested."""
    if mcs is None or mcs.empty or not {MODEL, IN_MCS, MCS_P_VALUE}.issubset(mcs.columns):
        return ""
    if mcs[MCS_P_VALUE].isna().all():  # too few folds or models: not tested, nothing to say
        return ""
    sizes = mcs[MCS_SIZE].dropna() if MCS_SIZE in mcs.columns else pd.Series(dtype=float)
    size = float(sizes.iloc[0]) if len(sizes) else DEFAULT_MCS_SIZE
    position = {m: k for k, m in enumerate(ranked)}
    models = sorted(mcs[MODEL].astype(str), key=lambda m: (position.get(m, len(ranked)), m))
    members = [m for m in models if bool(mcs.loc[mcs[MODEL].astype(str) == m, IN_MCS].iloc[0])]
    name = f"the {size * 100:g}% model confidence set"
    if len(members) == 1:
        return f"{name} holds only {members[0]}"
    if len(members) == len(models) == 2:
        return f"{name} holds both models ({_join(members)}): the folds cannot tell them apart"
    if len(members) == len(models):
        listed = f" ({_join(members)})" if len(members) <= MAX_LISTED else ""
        return f"{name} holds all {len(members)} models{listed}: the folds cannot tell them apart"
    if len(members) <= MAX_LISTED:
        return f"{name} holds {_join(members)}"
    return f"{name} holds {len(members)} of the {len(models)} models ({_join(members)})"


def _spa_row(spa: pd.DataFrame | None, reference: str) -> pd.Series | None:
    """The SPA test against `reference` when one was run (finite consistent p-value), else None."""
    if spa is None or spa.empty or not {BENCHMARK, SPA_P_CONSISTENT}.issubset(spa.columns):
        return None
    rows = spa[(spa[BENCHMARK].astype(str) == reference) & spa[SPA_P_CONSISTENT].notna()]
    return rows.iloc[0] if len(rows) else None


def _spa_clause(
    row: pd.Series, dm_winners: list[str], results: dict[str, DmResult], reference: str, alpha: float
) -> str:
    """Whether any model beats `reference` after the multiple-testing correction, and what that does to the DM tests."""
    p = float(row[SPA_P_CONSISTENT])
    n = int(row[N_MODELS]) if N_MODELS in row.index and pd.notna(row[N_MODELS]) else None
    tried = f"the {n} models tried" if n is not None and n != 1 else "the model tried"
    best = row.get(BEST_MODEL)
    if p < alpha:
        subject = str(best) if best is not None and pd.notna(best) else "at least one model"
        return f"{subject} beats the {reference} random walk even allowing for {tried} ({SPA_NAME}, {_p_text(p)})"
    over = f" over {n} models" if n is not None and n != 1 else ""
    if not dm_winners:
        return f"nothing beats the {reference} random walk ({SPA_NAME}{over}, {_p_text(p)}), {USUAL}"
    own = [_p_text(results[m].p_less) for m in dm_winners if results[m].p_less == results[m].p_less]
    detail = f" ({_join(own)})" if len(own) == len(dm_winners) else ""
    if len(dm_winners) == 1:
        dm_part = f"{dm_winners[0]}'s own {DM_SHORT} result{detail} does not survive the multiple-testing correction"
    else:
        dm_part = (
            f"the {DM_SHORT} results of {_join(dm_winners)} on their own{detail} "
            "do not survive the multiple-testing correction"
        )
    return (
        f"nothing beats the {reference} random walk once {tried} are allowed for ({SPA_NAME}, {_p_text(p)}): {dm_part}"
    )


def _p_text(p: float) -> str:
    text = fmt_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _join(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
