"""Trading evaluation of h=1 forecasts: does the forecast direction make money after costs?

Per (series, model), origins in cutoff order. At each origin: last_y = last training value (fold_info),
signal = sign(ŷ - last_y), realised return r = y / last_y - 1 over the scored session only (h = 1; with a
fold gap > 0 this spans gap + 1 sessions). Rules:
    long_flat   position 1 if signal > 0 else 0
    long_short  position = signal (+1 / -1; 0 when the forecast is exactly last_y)
Strategy return = position · r - cost_bps/10⁴ · |position - previous position| (the first origin trades
from flat). Figures per (series, model, rule):
    hit_rate          share of origins with a position where position · r > 0 (NaN if never in the market)
    cum_return        Π(1 + strategy return) - 1; buy_hold_return the same for r (always long, no cost)
    excess_return     cum_return - buy_hold_return
    sharpe            mean / std (ddof=1) of strategy returns · sqrt(periods_per_year); buy_hold_sharpe alike.
                      Each return is ONE session's return, so the annualisation is sqrt(252) whatever the
                      fold step: a larger step samples fewer sessions, it does not lengthen the return period.
    max_drawdown      largest peak-to-trough fall of the strategy equity curve (a positive fraction)
    turnover          mean |Δposition| per origin
With step > 1 the scored sessions are a sample (every step-th session), not a tradable daily strategy: the
cumulative and drawdown figures describe that sample, and sessions between origins are not held.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from common.errors import ConfigError
from common.schema import (
    ASSET_RETURN,
    BUY_HOLD,
    BUY_HOLD_RETURN,
    BUY_HOLD_SHARPE,
    CUM_RETURN,
    CUTOFF,
    DS,
    EQUITY,
    EQUITY_COLUMNS,
    EXCESS_RETURN,
    FOLD,
    HIT_RATE,
    ID,
    LAST_Y,
    MAX_DRAWDOWN,
    MODEL,
    N_ORIGINS,
    POSITION,
    RULE,
    SHARPE,
    STRATEGY_RETURN,
    TRADING_COLUMNS,
    TURNOVER,
    YHAT,
    H,
    Y,
)

RULES = ("long_flat", "long_short")


def positions(signal: np.ndarray, *, rule: str) -> np.ndarray:
    """Position per origin from the forecast direction under a rule (long_flat or long_short)."""
    signal = np.sign(np.asarray(signal, float))
    if rule == "long_flat":
        return (signal > 0).astype(float)
    if rule == "long_short":
        return signal
    raise ConfigError(f"unknown trading rule {rule!r}; choose one of {RULES}")


def strategy_returns(position: np.ndarray, asset_return: np.ndarray, *, cost_bps: float) -> np.ndarray:
    """Position times return minus cost on turnover; the first origin trades from flat."""
    turnover = np.abs(np.diff(position, prepend=0.0))
    return position * asset_return - cost_bps / 1e4 * turnover


def max_drawdown(returns: np.ndarray) -> float:
    """Largest peak-to-trough fall of the compounded equity curve, as a positive fraction (0 if none)."""
    equity = np.cumprod(1.0 + np.asarray(returns, float))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1.0 - equity / peak)) if equity.size else np.nan


def sharpe_ratio(returns: np.ndarray, *, periods_per_year: int = 252) -> float:
    """Annualised mean/std of per-session returns; NaN with fewer than 2 returns or zero volatility."""
    returns = np.asarray(returns, float)
    if returns.size < 2:
        return np.nan
    sd = returns.std(ddof=1)
    return float(returns.mean() / sd * np.sqrt(periods_per_year)) if sd > 0 else np.nan


def equity_curves(forecasts: pd.DataFrame, fold_info: pd.DataFrame, *, cost_bps: float = 5.0) -> pd.DataFrame:
    """Long frame EQUITY_COLUMNS per (series, model, rule, origin): positions, returns, equity, buy-and-hold."""
    _check_cost(cost_bps)
    frames = []
    for (uid, model), group in _origins(forecasts, fold_info).groupby([ID, MODEL], sort=True):
        asset = (group[Y] / group[LAST_Y] - 1.0).to_numpy(float)
        signal = (group[YHAT] - group[LAST_Y]).to_numpy(float)
        for rule in RULES:
            pos = positions(signal, rule=rule)
            strat = strategy_returns(pos, asset, cost_bps=cost_bps)
            frames.append(
                pd.DataFrame(
                    {
                        ID: uid,
                        MODEL: model,
                        RULE: rule,
                        CUTOFF: group[CUTOFF].to_numpy(),
                        DS: group[DS].to_numpy(),
                        POSITION: pos,
                        ASSET_RETURN: asset,
                        STRATEGY_RETURN: strat,
                        EQUITY: np.cumprod(1.0 + strat),
                        BUY_HOLD: np.cumprod(1.0 + asset),
                    }
                )
            )
    if not frames:
        return pd.DataFrame(columns=list(EQUITY_COLUMNS))
    return pd.concat(frames, ignore_index=True)[list(EQUITY_COLUMNS)]


def trading_table(
    forecasts: pd.DataFrame, fold_info: pd.DataFrame, *, cost_bps: float = 5.0, periods_per_year: int = 252
) -> pd.DataFrame:
    """One row per (series, model, rule): hit rate, returns vs buy-and-hold, Sharpe, drawdown, turnover."""
    curves = equity_curves(forecasts, fold_info, cost_bps=cost_bps)
    rows = []
    for (uid, model, rule), c in curves.groupby([ID, MODEL, RULE], sort=True):
        pos, asset, strat = (c[k].to_numpy(float) for k in (POSITION, ASSET_RETURN, STRATEGY_RETURN))
        held = pos != 0
        cum = float(np.prod(1.0 + strat) - 1.0)
        bh = float(np.prod(1.0 + asset) - 1.0)
        rows.append(
            {
                ID: uid,
                MODEL: model,
                RULE: rule,
                N_ORIGINS: len(c),
                HIT_RATE: float(np.mean(pos[held] * asset[held] > 0)) if held.any() else np.nan,
                CUM_RETURN: cum,
                BUY_HOLD_RETURN: bh,
                EXCESS_RETURN: cum - bh,
                SHARPE: sharpe_ratio(strat, periods_per_year=periods_per_year),
                BUY_HOLD_SHARPE: sharpe_ratio(asset, periods_per_year=periods_per_year),
                MAX_DRAWDOWN: max_drawdown(strat),
                TURNOVER: float(np.mean(np.abs(np.diff(pos, prepend=0.0)))),
            }
        )
    return pd.DataFrame(rows, columns=list(TRADING_COLUMNS))


def _origins(forecasts: pd.DataFrame, fold_info: pd.DataFrame) -> pd.DataFrame:
    """h=1 rows with last_y, ordered by series, model and cutoff."""
    first = forecasts.loc[forecasts[H] == 1]
    merged = first.merge(fold_info[[ID, FOLD, LAST_Y]], on=[ID, FOLD], how="left", validate="many_to_one")
    return merged.sort_values([ID, MODEL, CUTOFF], kind="stable")


def _check_cost(cost_bps: float) -> None:
    if not np.isfinite(cost_bps) or cost_bps < 0:
        raise ConfigError(f"cost_bps must be a finite number >= 0 (basis points per unit turnover), got {cost_bps!r}")
