"""ResultStore: DuckDB tables of live forecasts, their scores, and backtest runs, beside the price table.

Everything is keyed by the Prefect flow-run id that produced it, and every write replaces that run's rows in
one transaction, so re-running a write (a retried task) is idempotent. Tables are long and tidy like the
backtest output; `leaderboards()` and `live_record()` are the read side for `pricecast history`.

Live forecasts are scored lazily: `score_live_forecasts` joins every stored forecast with the stored price of
its session (the `prices` table written by ingest.price_store.PriceStore, same file) once that price exists.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from common.duckdb_io import locked_connection
from common.errors import DataError
from common.schema import DS, ID, INTERVAL_COLUMNS, METRICS_COLUMNS, MODEL, YHAT, H, Y

log = logging.getLogger(__name__)

PRICES = "prices"  # ingest.price_store.TABLE: store/ sits beside ingest, so the name is repeated (pinned by a test)
LIVE = "live_forecasts"
SCORES = "live_scores"
RUNS = "backtest_runs"
BT_FORECASTS = "backtest_forecasts"
BT_METRICS = "backtest_metrics"
LEADERBOARD = "backtest_leaderboard"
BT_TIMINGS = "backtest_timings"
BT_FAILURES = "backtest_failures"
BT_FOLD_INFO = "backtest_fold_info"
BT_QUALITY = "backtest_quality"

RUN_ID, AS_OF, SOURCE, TARGET = "flow_run_id", "as_of", "source", "target"
LAST_Y, SCALE_MAE = "last_y", "scale_mae"
LIVE_COLUMNS = (RUN_ID, AS_OF, SOURCE, TARGET, ID, MODEL, DS, H, YHAT, *INTERVAL_COLUMNS, LAST_Y, SCALE_MAE)
BACKTEST_TABLE_COLUMNS = (ID, MODEL, "fold", "cutoff", DS, H, Y, YHAT, *INTERVAL_COLUMNS)
_DATES = (AS_OF, DS, "cutoff", "train_start", "train_end")
# The tables of one backtest run, in the order `backtest_run` returns them; every one is keyed by the run id.
RUN_TABLES = {
    "forecasts": BT_FORECASTS,
    "metrics": BT_METRICS,
    "leaderboard": LEADERBOARD,
    "timings": BT_TIMINGS,
    "failures": BT_FAILURES,
    "fold_info": BT_FOLD_INFO,
    "quality": BT_QUALITY,
}
_intervals_ddl = ", ".join(f"{c} DOUBLE" for c in INTERVAL_COLUMNS)

_DDL = f"""
CREATE TABLE IF NOT EXISTS {LIVE} (
    {RUN_ID} VARCHAR NOT NULL, {AS_OF} DATE NOT NULL, {SOURCE} VARCHAR NOT NULL, {TARGET} VARCHAR NOT NULL,
    {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {DS} DATE NOT NULL, {H} INTEGER NOT NULL,
    {YHAT} DOUBLE, {_intervals_ddl}, {LAST_Y} DOUBLE, {SCALE_MAE} DOUBLE, created_at TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL}, {H})
);
CREATE TABLE IF NOT EXISTS {SCORES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {H} INTEGER NOT NULL,
    {DS} DATE NOT NULL, {Y} DOUBLE, abs_error DOUBLE, scaled_error DOUBLE, direction_hit DOUBLE,
    covered_80 BOOLEAN, covered_95 BOOLEAN, scored_at TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL}, {H})
);
CREATE TABLE IF NOT EXISTS {RUNS} (
    {RUN_ID} VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, tickers VARCHAR, models VARCHAR,
    n_forecast_rows INTEGER, n_failures INTEGER, meta VARCHAR
);
CREATE TABLE IF NOT EXISTS {BT_FORECASTS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, cutoff DATE, {DS} DATE, {H} INTEGER,
    {Y} DOUBLE, {YHAT} DOUBLE, {_intervals_ddl}
);
CREATE TABLE IF NOT EXISTS {BT_METRICS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, {H} INTEGER, metric VARCHAR, value DOUBLE
);
CREATE TABLE IF NOT EXISTS {LEADERBOARD} (
    {RUN_ID} VARCHAR NOT NULL, position INTEGER, {MODEL} VARCHAR, metric VARCHAR, value DOUBLE
);
CREATE TABLE IF NOT EXISTS {BT_TIMINGS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, fit_seconds DOUBLE,
    predict_seconds DOUBLE, refit BOOLEAN
);
CREATE TABLE IF NOT EXISTS {BT_FAILURES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, error_type VARCHAR, message VARCHAR
);
CREATE TABLE IF NOT EXISTS {BT_FOLD_INFO} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, fold INTEGER, cutoff DATE, train_start DATE, train_end DATE,
    last_y DOUBLE, scale_mae DOUBLE, scale_mse DOUBLE
);
CREATE TABLE IF NOT EXISTS {BT_QUALITY} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, "check" VARCHAR, count BIGINT, detail VARCHAR
);
"""

# Every live forecast with the stored price of its session (`actual`: the forecast's target column; NULL when
# the price row has no value there).
_ACTUALS = f"""
SELECT f.*, CASE WHEN f.{TARGET} = 'adj_close' THEN p.adj_close ELSE p.close END AS actual
FROM {LIVE} f JOIN {PRICES} p ON p.source = f.{SOURCE} AND p.{ID} = f.{ID} AND p.{DS} = f.{DS}
"""
# Scores every live forecast whose session now has a stored price; the price column is the forecast's target.
# direction_hit follows backtest.metrics.direction_hit: 1 same sign, 0 opposite, 0.5 when either move is zero.
_SCORE = f"""
INSERT OR REPLACE INTO {SCORES}
SELECT {RUN_ID}, {ID}, {MODEL}, {H}, {DS}, actual, abs(actual - {YHAT}), abs(actual - {YHAT}) / nullif({SCALE_MAE}, 0),
       CASE WHEN sign({YHAT} - {LAST_Y}) = 0 OR sign(actual - {LAST_Y}) = 0 THEN 0.5
            ELSE CAST(sign({YHAT} - {LAST_Y}) = sign(actual - {LAST_Y}) AS DOUBLE) END,
       CASE WHEN yhat_lo_80 IS NULL THEN NULL ELSE actual BETWEEN yhat_lo_80 AND yhat_hi_80 END,
       CASE WHEN yhat_lo_95 IS NULL THEN NULL ELSE actual BETWEEN yhat_lo_95 AND yhat_hi_95 END,
       CAST(now() AS TIMESTAMP)
FROM ({_ACTUALS}) joined
WHERE actual IS NOT NULL
"""
# Scores whose price is gone (a corrected file re-ingested without the row: ingest.price_store.PriceStore.replace) or
# no longer has the target: deleted, so the track record follows the store's current prices. A price that
# changed is re-scored by _SCORE's INSERT OR REPLACE.
_UNSCORE = f"""
DELETE FROM {SCORES} WHERE NOT EXISTS (
    SELECT 1 FROM ({_ACTUALS}) a
    WHERE a.actual IS NOT NULL AND a.{RUN_ID} = {SCORES}.{RUN_ID} AND a.{ID} = {SCORES}.{ID}
      AND a.{MODEL} = {SCORES}.{MODEL} AND a.{H} = {SCORES}.{H}
)
"""
# Scored rows whose stored price differs from the one they were scored against (logged, then re-scored).
_CHANGED = f"""
SELECT count(*) FROM {SCORES} s JOIN ({_ACTUALS}) a USING ({RUN_ID}, {ID}, {MODEL}, {H})
WHERE a.actual IS NOT NULL AND s.{Y} IS DISTINCT FROM a.actual
"""


# ==== event task (flows.event_backtest): runs, their tables, live event probabilities =========================
# Tables of their own rather than a `task` column on backtest_runs: an event run's predictions are probabilities
# (p, decision threshold), not price paths, and every reader of the price tables (history, leaderboards, the
# live monitor) stays price-only. `stored_runs` and `resolve_task_run` list and resolve both kinds by run id.
EVENT_RUNS = "event_runs"
EV_PREDICTIONS = "event_predictions"
EV_METRICS = "event_metrics"
EV_LEADERBOARD = "event_leaderboard"
EV_TIMINGS = "event_timings"
EV_FAILURES = "event_failures"
LIVE_EVENTS = "live_event_probabilities"
# The tables of one event run, in the order `event_run` returns them; every one is keyed by the run id.
EVENT_RUN_TABLES = {
    "predictions": EV_PREDICTIONS,
    "metrics": EV_METRICS,
    "leaderboard": EV_LEADERBOARD,
    "timings": EV_TIMINGS,
    "failures": EV_FAILURES,
    "probabilities": LIVE_EVENTS,
}
# backtest.event_metrics.EVENT_PREDICTION_COLUMNS and backtest.event_live.LIVE_EVENT_COLUMNS: store/ sits below
# backtest in the layers, so the names are repeated (pinned by tests/events/test_event_store.py).
EVENT_PREDICTION_COLUMNS = (ID, MODEL, "fold", "cutoff", DS, H, Y, "p", "threshold")
LIVE_EVENT_COLUMNS = (ID, MODEL, AS_OF, H, "threshold", "p", "decision_threshold", "train_end", "n_train")
TASK_PRICE, TASK_EVENT = "price", "event"

_EVENT_DDL = f"""
CREATE TABLE IF NOT EXISTS {EVENT_RUNS} (
    {RUN_ID} VARCHAR PRIMARY KEY, created_at TIMESTAMP NOT NULL, tickers VARCHAR, models VARCHAR,
    threshold DOUBLE, horizon INTEGER, n_prediction_rows INTEGER, n_failures INTEGER, meta VARCHAR
);
CREATE TABLE IF NOT EXISTS {EV_PREDICTIONS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, cutoff DATE, {DS} DATE, {H} INTEGER,
    {Y} DOUBLE, p DOUBLE, threshold DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_METRICS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, {H} INTEGER, metric VARCHAR, value DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_LEADERBOARD} (
    {RUN_ID} VARCHAR NOT NULL, position INTEGER, {MODEL} VARCHAR, metric VARCHAR, value DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_TIMINGS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, fit_seconds DOUBLE,
    predict_seconds DOUBLE, refit BOOLEAN
);
CREATE TABLE IF NOT EXISTS {EV_FAILURES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, fold INTEGER, error_type VARCHAR, message VARCHAR
);
CREATE TABLE IF NOT EXISTS {LIVE_EVENTS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {AS_OF} DATE NOT NULL,
    {H} INTEGER NOT NULL, threshold DOUBLE NOT NULL, p DOUBLE NOT NULL, decision_threshold DOUBLE,
    train_end DATE, n_train INTEGER, created_at TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL})
);
"""
# ==== end of the event task's tables ==========================================================================

# ==== champions of the production loop (backtest.champion chooses them, forecast_flow forecasts with them) ====
# backtest.champion.CHAMPION_COLUMNS plus run id and time: store/ sits below backtest in the layers, so the names
# are repeated (pinned by tests/backtest/test_champion.py).
CHAMPIONS = "champions"
CHAMPION_TABLE_COLUMNS = (RUN_ID, "created_at", ID, MODEL, "mase", "naive_mase", "p_value", "reason", "params")
# live_forecasts rows of the model `champion`: the model it resolved to on that run (NULL on every other row).
RESOLVED_MODEL = "resolved_model"

# ALTER ... IF NOT EXISTS: stores created before the column existed gain it (NULL on their old rows).
_CHAMPIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CHAMPIONS} (
    {RUN_ID} VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL,
    mase DOUBLE, naive_mase DOUBLE, p_value DOUBLE, reason VARCHAR, params VARCHAR,
    PRIMARY KEY ({RUN_ID}, {ID})
);
ALTER TABLE {LIVE} ADD COLUMN IF NOT EXISTS {RESOLVED_MODEL} VARCHAR;
"""
# ==== end of the champions' tables ============================================================================


class ResultStore:
    """Forecast and backtest results in one DuckDB file (by default the price store's file, separate tables).

    Like PriceStore, every operation opens a short-lived connection (DuckDB allows one writing process) and
    waits out another process's lock with exponential backoff.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        lock_attempts: int = 8,
        lock_delay: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = Path(path)
        self.lock_attempts = lock_attempts
        self.lock_delay = lock_delay
        self._sleep = sleep

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # ---- writes: one transaction each, replacing the run's rows ------------------------------------------
    def write_live(self, forecasts: pd.DataFrame, *, flow_run_id: str) -> int:
        """Store one run's live forecasts (LIVE_COLUMNS minus the run id); re-writing the same run replaces it."""
        frame = _live_frame(forecasts, flow_run_id)
        with self._transaction() as con:
            con.execute(f"DELETE FROM {SCORES} WHERE {RUN_ID} = ?", [flow_run_id])
            con.execute(f"DELETE FROM {LIVE} WHERE {RUN_ID} = ?", [flow_run_id])
            _insert(con, LIVE, frame, extra="CAST(now() AS TIMESTAMP) AS created_at")
        log.info("stored %d live forecast rows of run %s", len(frame), flow_run_id)
        return len(frame)

    def write_backtest(
        self,
        *,
        flow_run_id: str,
        forecasts: pd.DataFrame,
        metrics: pd.DataFrame,
        leaderboard: pd.DataFrame,
        meta: Mapping[str, Any],
        n_failures: int = 0,
        timings: pd.DataFrame | None = None,
        failures: pd.DataFrame | None = None,
        fold_info: pd.DataFrame | None = None,
        quality: pd.DataFrame | None = None,
        champions: pd.DataFrame | None = None,
    ) -> None:
        """Store one backtest run (its tables and a run row); re-writing the run replaces it.

        With timings, failures, fold_info and quality stored too, `backtest_run` gives back everything the
        report needs, so `pricecast report RUN` re-renders a run whose output directory is gone.
        """
        run = _run_row(flow_run_id, meta, forecasts, n_forecast_rows=len(forecasts), n_failures=int(n_failures))
        tables = {
            RUNS: run,
            BT_FORECASTS: _with_run(forecasts[list(BACKTEST_TABLE_COLUMNS)], flow_run_id),
            BT_METRICS: _with_run(metrics[list(METRICS_COLUMNS)], flow_run_id),
            LEADERBOARD: _with_run(leaderboard_long(leaderboard), flow_run_id),
        }
        extra = {BT_TIMINGS: timings, BT_FAILURES: failures, BT_FOLD_INFO: fold_info, BT_QUALITY: quality}
        for name, frame in extra.items():
            if frame is not None:
                tables[name] = _with_run(frame, flow_run_id)
        if champions is not None:  # in the run's transaction: a run is never stored without its champions
            tables[CHAMPIONS] = _champion_rows(champions, flow_run_id, run["created_at"].iloc[0])
        self._replace_run(flow_run_id, tables)
        log.info("stored backtest run %s: %d forecast rows, %d metric rows", flow_run_id, len(forecasts), len(metrics))

    def score_live(self) -> int:
        """Score every live forecast against the stored price of its session, as the prices are now (idempotent):
        a price that changed is re-scored, one that was removed unscores its rows. Returns rows newly scored."""
        if not self.path.exists():
            return 0
        with self._transaction() as con:
            if not _has_table(con, PRICES):
                return 0
            before = _count(con, f"SELECT count(*) FROM {SCORES}")
            changed = _count(con, _CHANGED)
            con.execute(_UNSCORE)
            kept = _count(con, f"SELECT count(*) FROM {SCORES}")
            con.execute(_SCORE)
            after = _count(con, f"SELECT count(*) FROM {SCORES}")
        if before > kept or changed:
            log.warning(
                "live track record follows the corrected prices: %d scored rows whose price was removed unscored, "
                "%d whose price changed re-scored",
                before - kept,
                changed,
            )
        if after > kept:
            log.info("scored %d live forecast rows against stored prices (%d in total)", after - kept, after)
        return int(after - kept)

    # ---- reads ----------------------------------------------------------------------------------------------
    def live_forecasts(self, flow_run_id: str | None = None) -> pd.DataFrame:
        """Stored live forecasts (all runs, or one), oldest run first."""
        where, params = (f"WHERE {RUN_ID} = ?", [flow_run_id]) if flow_run_id else ("", [])
        sql = f"SELECT * FROM {LIVE} {where} ORDER BY created_at, {RUN_ID}, {ID}, {MODEL}, {H}"
        return _dated(self._query(sql, params))

    def live_scores(self) -> pd.DataFrame:
        """Scored live forecast rows joined with their forecast (as_of, yhat, intervals)."""
        sql = (
            f"SELECT f.{AS_OF}, s.*, f.{YHAT} FROM {SCORES} s JOIN {LIVE} f "
            f"USING ({RUN_ID}, {ID}, {MODEL}, {H}) ORDER BY f.{AS_OF}, s.{ID}, s.{MODEL}, s.{H}"
        )
        return _dated(self._query(sql, []))

    def live_record(self, *, by: tuple[str, ...] = (MODEL,)) -> pd.DataFrame:
        """Each model's live track record: forecasts made and scored, MAE, MASE, hit rate, interval coverage."""
        keys = ", ".join(by)
        sql = f"""
            SELECT {", ".join(f"f.{k}" for k in by)}, count(*) AS n_forecasts, count(s.{Y}) AS n_scored,
                   avg(s.abs_error) AS mae, avg(s.scaled_error) AS mase,
                   avg(s.direction_hit) AS hit_rate,
                   avg(CAST(s.covered_80 AS DOUBLE)) AS coverage_80, avg(CAST(s.covered_95 AS DOUBLE)) AS coverage_95,
                   max(f.{AS_OF}) AS last_as_of
            FROM {LIVE} f LEFT JOIN {SCORES} s USING ({RUN_ID}, {ID}, {MODEL}, {H})
            GROUP BY {", ".join(f"f.{k}" for k in by)} ORDER BY mase NULLS LAST, {keys}
        """
        return _dated(self._query(sql, []))

    def backtest_runs(self) -> pd.DataFrame:
        """One row per stored backtest run, newest first."""
        return self._query(f"SELECT * FROM {RUNS} ORDER BY created_at DESC, {RUN_ID}", [])

    def leaderboards(self, *, last: int | None = None) -> pd.DataFrame:
        """Past leaderboards, long (flow_run_id, created_at, position, model, metric, value), newest run first."""
        limit = f"LIMIT {int(last)}" if last else ""
        sql = f"""
            WITH runs AS (SELECT {RUN_ID}, created_at FROM {RUNS} ORDER BY created_at DESC {limit})
            SELECT r.{RUN_ID}, r.created_at, l.position, l.{MODEL}, l.metric, l.value
            FROM {LEADERBOARD} l JOIN runs r USING ({RUN_ID})
            ORDER BY r.created_at DESC, r.{RUN_ID}, l.position, l.metric
        """
        return self._query(sql, [])

    def backtest_table(self, name: str, flow_run_id: str) -> pd.DataFrame:
        """One stored backtest table (one of RUN_TABLES' values, e.g. backtest_forecasts) of a run."""
        if name not in RUN_TABLES.values():
            raise DataError(f"no backtest table {name!r}; use one of {', '.join(RUN_TABLES.values())}")
        frame = _dated(self._query(f"SELECT * FROM {name} WHERE {RUN_ID} = ?", [flow_run_id]))
        return frame.drop(columns=[RUN_ID])

    def resolve_run(self, run: str | None = None) -> str:
        """The full flow-run id of `run` (an id or a unique prefix of one); None or 'latest' is the newest run."""
        runs = self.backtest_runs() if self.path.exists() else pd.DataFrame({RUN_ID: []})
        if runs.empty:
            raise DataError(f"no backtest runs stored in {self.path}; run `pricecast backtest` first")
        return str(_match_run(runs, run)[RUN_ID])

    def backtest_run(self, flow_run_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        """Every stored table of one run (keys of RUN_TABLES) and its meta dict, as written by write_backtest."""
        run = self._query(f"SELECT meta FROM {RUNS} WHERE {RUN_ID} = ?", [flow_run_id])
        if run.empty:
            raise DataError(f"no backtest run {flow_run_id!r} in {self.path}; see `pricecast report --list`")
        tables = {key: self.backtest_table(name, flow_run_id) for key, name in RUN_TABLES.items()}
        return tables, json.loads(run["meta"].iloc[0] or "{}")

    # ---- live monitoring reads (store.monitor compares them) ----------------------------------------------
    def live_score_window(self, *, last_as_of: int) -> pd.DataFrame:
        """Scored live rows of each (unique_id, model)'s latest `last_as_of` scored as_of dates, one row per
        (unique_id, model, as_of, h): a session forecast twice (a rerun) counts once, from the newer run.

        Returns unique_id, model, as_of, h, ds, scaled_error, covered_95 (NULL without intervals), resolved_model
        (the model a `champion` row ran; NULL on other rows).
        """
        sql = f"""
            WITH scored AS (
                SELECT f.{ID}, f.{MODEL}, f.{AS_OF}, s.{H}, s.{DS}, s.scaled_error, s.covered_95, f.resolved_model,
                       row_number() OVER (PARTITION BY f.{ID}, f.{MODEL}, f.{AS_OF}, s.{H}
                                          ORDER BY f.created_at DESC, f.{RUN_ID} DESC) AS newest
                FROM {SCORES} s JOIN {LIVE} f USING ({RUN_ID}, {ID}, {MODEL}, {H})
            ), ranked AS (
                SELECT *, dense_rank() OVER (PARTITION BY {ID}, {MODEL} ORDER BY {AS_OF} DESC) AS age
                FROM scored WHERE newest = 1
            )
            SELECT {ID}, {MODEL}, {AS_OF}, {H}, {DS}, scaled_error, covered_95, resolved_model FROM ranked
            WHERE age <= ? ORDER BY {ID}, {MODEL}, {AS_OF}, {H}
        """
        return _dated(self._query(sql, [int(last_as_of)]))

    def newest_backtest_metrics(self, metrics: tuple[str, ...]) -> pd.DataFrame:
        """Per (unique_id, model), the `metrics` by horizon step (mean over folds) of the newest stored backtest
        run that has any of them for that pair; other pairs of other runs are not mixed in.

        Returns unique_id, model, h, metric, value, flow_run_id, created_at (of the run).
        """
        names = ", ".join("?" for _ in metrics)
        sql = f"""
            WITH pairs AS (
                SELECT m.{ID}, m.{MODEL}, m.{RUN_ID}, r.created_at,
                       row_number() OVER (PARTITION BY m.{ID}, m.{MODEL}
                                          ORDER BY r.created_at DESC, m.{RUN_ID} DESC) AS newest
                FROM (SELECT DISTINCT {RUN_ID}, {ID}, {MODEL} FROM {BT_METRICS} WHERE metric IN ({names})) m
                JOIN {RUNS} r USING ({RUN_ID})
            )
            SELECT m.{ID}, m.{MODEL}, m.{H}, m.metric, avg(m.value) AS value, p.{RUN_ID}, p.created_at
            FROM {BT_METRICS} m JOIN pairs p USING ({RUN_ID}, {ID}, {MODEL})
            WHERE p.newest = 1 AND m.metric IN ({names})
            GROUP BY m.{ID}, m.{MODEL}, m.{H}, m.metric, p.{RUN_ID}, p.created_at
            ORDER BY m.{ID}, m.{MODEL}, m.metric, m.{H}
        """
        return self._query(sql, [*metrics, *metrics])

    # ---- event task: event backtest runs and live event probabilities (tables: EVENT_RUN_TABLES) -------------
    def write_event_backtest(
        self,
        *,
        flow_run_id: str,
        predictions: pd.DataFrame,
        metrics: pd.DataFrame,
        leaderboard: pd.DataFrame,
        meta: Mapping[str, Any],
        timings: pd.DataFrame,
        failures: pd.DataFrame,
        probabilities: pd.DataFrame | None = None,
    ) -> None:
        """Store one event run (its tables, a run row and its live probabilities) in one transaction; re-writing
        the run replaces it. `event_run` gives back everything the event report needs."""
        # Key order kept (sort_keys=False): the event report lists the plan and refit policy in this order.
        run = _run_row(
            flow_run_id,
            meta,
            predictions,
            sort_keys=False,
            threshold=meta.get("threshold"),
            horizon=meta.get("horizon"),
            n_prediction_rows=len(predictions),
            n_failures=len(failures),
        )
        tables = {
            EVENT_RUNS: run,
            EV_PREDICTIONS: _with_run(predictions[list(EVENT_PREDICTION_COLUMNS)], flow_run_id),
            EV_METRICS: _with_run(metrics[list(METRICS_COLUMNS)], flow_run_id),
            EV_LEADERBOARD: _with_run(leaderboard_long(leaderboard), flow_run_id),
            EV_TIMINGS: _with_run(timings, flow_run_id),
            EV_FAILURES: _with_run(failures, flow_run_id),
        }
        if probabilities is not None:
            tables[LIVE_EVENTS] = _with_run(probabilities[list(LIVE_EVENT_COLUMNS)], flow_run_id)
        self._replace_run(flow_run_id, tables, stamped=(LIVE_EVENTS,))
        log.info("stored event run %s: %d prediction rows", flow_run_id, len(predictions))

    def event_runs(self) -> pd.DataFrame:
        """One row per stored event run, newest first."""
        return self._query(f"SELECT * FROM {EVENT_RUNS} ORDER BY created_at DESC, {RUN_ID}", [])

    def event_run(self, flow_run_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        """Every stored table of one event run (keys of EVENT_RUN_TABLES) and its meta dict."""
        run = self._query(f"SELECT meta FROM {EVENT_RUNS} WHERE {RUN_ID} = ?", [flow_run_id])
        if run.empty:
            raise DataError(f"no event run {flow_run_id!r} in {self.path}; see `pricecast report --list`")
        tables = {}
        for key, name in EVENT_RUN_TABLES.items():
            frame = _dated(self._query(f"SELECT * FROM {name} WHERE {RUN_ID} = ?", [flow_run_id]))
            tables[key] = frame.drop(columns=[RUN_ID, *(["created_at"] if name == LIVE_EVENTS else [])])
        return tables, json.loads(run["meta"].iloc[0] or "{}")

    def live_event_probabilities(self, flow_run_id: str | None = None) -> pd.DataFrame:
        """Stored live event probabilities (all runs, or one), oldest run first."""
        where, params = (f"WHERE {RUN_ID} = ?", [flow_run_id]) if flow_run_id else ("", [])
        sql = f"SELECT * FROM {LIVE_EVENTS} {where} ORDER BY created_at, {RUN_ID}, {ID}, {MODEL}"
        return _dated(self._query(sql, params))

    def stored_runs(self) -> pd.DataFrame:
        """Price and event runs together, newest first: flow_run_id, task, created_at, tickers, models, n_rows,
        n_failures (`pricecast report --list`)."""
        if not self.path.exists():
            return pd.DataFrame(columns=[RUN_ID, "task", "created_at", "tickers", "models", "n_rows", "n_failures"])
        cols = "created_at, tickers, models"
        sql = f"""
            SELECT {RUN_ID}, '{TASK_PRICE}' AS task, {cols}, n_forecast_rows AS n_rows, n_failures FROM {RUNS}
            UNION ALL
            SELECT {RUN_ID}, '{TASK_EVENT}' AS task, {cols}, n_prediction_rows AS n_rows, n_failures FROM {EVENT_RUNS}
            ORDER BY created_at DESC, {RUN_ID}
        """
        return self._query(sql, [])

    def resolve_task_run(self, run: str | None = None) -> tuple[str, str]:
        """(task, full flow-run id) of `run` among price and event runs: an id or a unique prefix of one; None or
        'latest' is the newest run of either kind."""
        runs = self.stored_runs()
        if runs.empty:
            raise DataError(
                f"no backtest runs stored in {self.path}; run `pricecast backtest` (or `--task event`) first"
            )
        found = _match_run(runs, run)
        return str(found["task"]), str(found[RUN_ID])

    # ---- champions of the production loop (written by write_backtest(champions=...)) -------------------------
    def champions(self, *, latest: bool = True) -> pd.DataFrame:
        """The newest stored champion of each ticker (latest=True), or every run's champions; newest first.

        Columns CHAMPION_TABLE_COLUMNS; `params` is the JSON of the model's parameters in that backtest.
        """
        newest = (
            f"QUALIFY row_number() OVER (PARTITION BY {ID} ORDER BY created_at DESC, {RUN_ID} DESC) = 1"
            if latest
            else ""
        )
        sql = f"SELECT * FROM {CHAMPIONS} {newest} ORDER BY created_at DESC, {RUN_ID} DESC, {ID}"
        return self._query(sql, [])

    def champion_history(self) -> pd.DataFrame:
        """Every run's champion per ticker, oldest run first, with `previous_model`: the ticker's champion in its
        previous run (NULL in its first); rows where model differs from previous_model are the changes."""
        sql = f"""
            SELECT *, lag({MODEL}) OVER (PARTITION BY {ID} ORDER BY created_at, {RUN_ID}) AS previous_model
            FROM {CHAMPIONS} ORDER BY created_at, {RUN_ID}, {ID}
        """
        return self._query(sql, [])

    # ---- connections ----------------------------------------------------------------------------------------
    def _replace_run(self, flow_run_id: str, tables: Mapping[str, pd.DataFrame], *, stamped: tuple[str, ...] = ()):
        """One transaction: every table's rows of the run deleted, then the new ones inserted (`stamped` tables
        get created_at = now), so a retried write replaces the run instead of doubling it."""
        with self._transaction() as con:
            for name, frame in tables.items():
                con.execute(f"DELETE FROM {name} WHERE {RUN_ID} = ?", [flow_run_id])
                _insert(con, name, frame, extra="CAST(now() AS TIMESTAMP) AS created_at" if name in stamped else "")

    def _query(self, sql: str, params: list[Any]) -> pd.DataFrame:
        with self._connect() as con:
            return con.execute(sql, params).df()

    @contextmanager
    def _transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as con:
            con.execute("BEGIN TRANSACTION")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def _connect(self):
        """A fresh connection with the tables in place, closed afterwards; waits out another writer's lock."""
        return locked_connection(
            self.path,
            ddl=_DDL + _EVENT_DDL + _CHAMPIONS_DDL,
            label="results store",
            attempts=self.lock_attempts,
            delay=self.lock_delay,
            sleep=self._sleep,
        )


def score_live_forecasts(store: ResultStore) -> int:
    """Score earlier live forecasts against prices ingested since (called at the end of ingest and forecast flows)."""
    return store.score_live()


def live_forecast_frame(
    forecast: pd.DataFrame, history: pd.DataFrame, *, model: str, source: str, target: str
) -> pd.DataFrame:
    """A model's forecast (unique_id, ds, h, yhat, intervals) as live-store rows: adds as_of, last_y and scale_mae.

    `history` is the series the model was fitted on: as_of is its last session, last_y its last value (direction
    hits compare against it) and scale_mae its mean absolute one-step change (the MASE scale).
    """
    y = history[Y].to_numpy(dtype=float)
    out = forecast.copy()
    for col in INTERVAL_COLUMNS:
        if col not in out.columns:
            out[col] = np.nan
    diffs = np.abs(np.diff(y))
    out[AS_OF] = pd.Timestamp(history[DS].max())
    out[SOURCE], out[TARGET], out[MODEL] = source, target, model
    out[LAST_Y] = float(y[-1]) if y.size else np.nan
    out[SCALE_MAE] = float(diffs.mean()) if diffs.size else np.nan
    return out[[c for c in LIVE_COLUMNS if c != RUN_ID]]


def leaderboard_long(leaderboard: pd.DataFrame) -> pd.DataFrame:
    """A leaderboard (one row per model, best first) as position, model, metric, value (booleans as 0/1)."""
    if leaderboard is None or leaderboard.empty:
        return pd.DataFrame({"position": pd.Series(dtype="int64"), MODEL: [], "metric": [], "value": []})
    board = leaderboard.reset_index(drop=True)
    board.insert(0, "position", np.arange(1, len(board) + 1))
    long = board.melt(id_vars=["position", MODEL], var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"].astype("object").where(long["value"].notna(), None), errors="coerce")
    long["value"] = long["value"].astype("float64")
    long[MODEL] = long[MODEL].astype(str)
    return long.sort_values(["position", "metric"], kind="stable").reset_index(drop=True)


def _live_frame(forecasts: pd.DataFrame, flow_run_id: str) -> pd.DataFrame:
    missing = [c for c in LIVE_COLUMNS if c != RUN_ID and c not in forecasts.columns]
    if missing:
        raise DataError(f"cannot store live forecasts: missing columns {missing}; build them with live_forecast_frame")
    frame = _with_run(forecasts[[c for c in LIVE_COLUMNS if c != RUN_ID]], flow_run_id)
    resolved = forecasts.get(RESOLVED_MODEL, pd.Series(None, index=forecasts.index, dtype=object))
    frame[RESOLVED_MODEL] = resolved.astype(object).where(resolved.notna(), None).to_numpy()  # NULL unless champion
    dup = frame.duplicated([ID, MODEL, H])
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise DataError(f"live forecasts repeat (ticker, model, h) {first[ID]}, {first[MODEL]}, {first[H]}; dedupe")
    return frame


def _with_run(frame: pd.DataFrame, flow_run_id: str) -> pd.DataFrame:
    out = frame.copy()
    out.insert(0, RUN_ID, str(flow_run_id))
    for col in _DATES:
        if col in out.columns:
            out[col] = pd.to_datetime(out[col]).astype("datetime64[ns]")
    return out.reset_index(drop=True)


def _insert(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, *, extra: str = "") -> None:
    if frame.empty:
        return
    cols = list(frame.columns)
    select = ", ".join(f'CAST("{c}" AS DATE)' if c in _DATES else f'"{c}"' for c in cols)
    names = ", ".join(f'"{c}"' for c in cols + (["created_at"] if extra else []))
    con.register("incoming", frame)
    con.execute(f"INSERT INTO {table} ({names}) SELECT {select}{', ' + extra if extra else ''} FROM incoming")
    # Not in a `finally`: after a failed INSERT the transaction is aborted and unregister would raise a
    # TransactionException that hides the real error; the connection is closed (and the view gone) anyway.
    con.unregister("incoming")


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    sql = "SELECT count(*) FROM information_schema.tables WHERE table_name = ?"
    return bool(con.execute(sql, [name]).fetchone()[0])


def _dated(frame: pd.DataFrame) -> pd.DataFrame:
    for col in (*_DATES, "last_as_of"):
        if col in frame.columns:
            frame[col] = pd.to_datetime(frame[col])
    return frame


def _run_row(
    flow_run_id: str, meta: Mapping[str, Any], rows: pd.DataFrame, *, sort_keys: bool = True, **counts: Any
) -> pd.DataFrame:
    """A run's row: id, created_at (meta's, else now), the tickers and models of `rows`, `counts`, meta as JSON."""
    return pd.DataFrame(
        {
            RUN_ID: [flow_run_id],
            "created_at": [pd.Timestamp(meta.get("created_at") or pd.Timestamp.now(tz="UTC")).tz_localize(None)],
            "tickers": [",".join(sorted(map(str, rows[ID].unique())))],
            "models": [",".join(sorted(map(str, rows[MODEL].unique())))],
            **{name: [value] for name, value in counts.items()},
            "meta": [json.dumps(dict(meta), sort_keys=sort_keys, default=str)],
        }
    )


def _match_run(runs: pd.DataFrame, run: str | None) -> pd.Series:
    """The row of `runs` (newest first) that `run` names: an id or a unique prefix; None or 'latest' is the first."""
    if run is None or run == "latest":
        return runs.iloc[0]
    matches = runs[runs[RUN_ID].astype(str).str.startswith(run)]
    if len(matches) > 1:  # list the runs it matches, with their dates, so the user can pick a longer prefix
        rows = matches.head(10)
        listed = ", ".join(f"{r[RUN_ID]} ({str(r['created_at'])[:16]})" for _, r in rows.iterrows())
        raise DataError(
            f"run {run!r} matches {len(matches)} stored backtest runs: {listed}; give a longer prefix of one"
        )
    if matches.empty:
        listed = ", ".join(runs[RUN_ID].astype(str).head(5))
        raise DataError(
            f"run {run!r} matches no stored backtest run; recent runs: {listed} (see `pricecast report --list`)"
        )
    return matches.iloc[0]


# ---- champions of the production loop -------------------------------------------------------------------------
def _champion_rows(champions: pd.DataFrame, flow_run_id: str, created_at: pd.Timestamp) -> pd.DataFrame:
    """backtest.champion's table as champions rows: the run's id and time in front, every column present."""
    missing = [c for c in CHAMPION_TABLE_COLUMNS[2:] if c not in champions.columns]
    if missing:
        raise DataError(f"cannot store champions: missing columns {missing}; build them with backtest.champion")
    frame = _with_run(champions[list(CHAMPION_TABLE_COLUMNS[2:])], flow_run_id)
    frame.insert(1, "created_at", pd.Timestamp(created_at))
    return frame
