"""ResultStore: DuckDB tables of live forecasts, their scores, and backtest runs, beside the price table.

Everything is keyed by the Prefect flow-run id that produced it, and every write replaces that run's rows in
one transaction, so re-running a write (a retried task) is idempotent. Tables are long and tidy like the
backtest output; `leaderboards()` and `live_record()` are the read side for `pricecast history`.

Live forecasts are scored lazily: `score_live_forecasts` joins every stored forecast with the stored price of
its session (the `prices` table written by ingest.price_store.PriceStore, same file) once that price exists.

Table and column names are common.schema's; the DDL and the scoring SQL live in store.tables, the frame <->
row conversions in store.rows.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from common.duckdb_io import locked_connection
from common.errors import DataError
from common.schema import (
    ABS_ERROR,
    AS_OF,
    BACKTEST_COLUMNS,
    BT_FAILURES,
    BT_FOLD_INFO,
    BT_FORECASTS,
    BT_METRICS,
    BT_QUALITY,
    BT_TIMINGS,
    BT_TUNING,
    CHAMPION_TABLE_COLUMNS,
    CHAMPIONS,
    COVERAGE_80,
    COVERAGE_95,
    COVERED_80,
    COVERED_95,
    CREATED_AT,
    DIRECTION_HIT,
    DS,
    EV_FAILURES,
    EV_LEADERBOARD,
    EV_METRICS,
    EV_PREDICTIONS,
    EV_TIMINGS,
    EVENT_PREDICTION_COLUMNS,
    EVENT_RUN_TABLES,
    EVENT_RUNS,
    HIT_RATE,
    ID,
    INTERVAL_COLUMNS,
    LAST_AS_OF,
    LAST_Y,
    LEADERBOARD,
    LIVE,
    LIVE_COLUMNS,
    LIVE_EVENT_COLUMNS,
    LIVE_EVENTS,
    MAE,
    MASE,
    META,
    METRIC,
    METRICS_COLUMNS,
    MODEL,
    MODELS,
    N_FAILURES,
    N_FORECAST_ROWS,
    N_FORECASTS,
    N_PREDICTION_ROWS,
    N_ROWS,
    N_SCORED,
    POSITION,
    PREVIOUS_MODEL,
    PRICES,
    RESOLVED_MODEL,
    RUN_ID,
    RUN_TABLES,
    RUNS,
    SCALE_MAE,
    SCALED_ERROR,
    SCORES,
    SOURCE,
    STORED_RUN_COLUMNS,
    TARGET,
    TASK,
    TICKERS,
    VALUE,
    YHAT,
    H,
    Y,
)
from store import rows
from store.tables import ALL_DDL, CHANGED, SCORE, UNSCORE

log = logging.getLogger(__name__)

TASK_PRICE, TASK_EVENT = "price", "event"  # values of stored_runs' task column
_NOW = f"CAST(now() AS TIMESTAMP) AS {CREATED_AT}"


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
            rows.insert(con, LIVE, frame, extra=_NOW)
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
        tuning: pd.DataFrame | None = None,
    ) -> None:
        """Store one backtest run (its tables and a run row); re-writing the run replaces it.

        With timings, failures, fold_info and quality stored too, `backtest_run` gives back everything the
        report needs, so `pricecast report RUN` re-renders a run whose output directory is gone.
        """
        run = rows.run_row(flow_run_id, meta, forecasts, n_forecast_rows=len(forecasts), n_failures=int(n_failures))
        tables = {
            RUNS: run,
            BT_FORECASTS: rows.with_run(forecasts[list(BACKTEST_COLUMNS)], flow_run_id),
            BT_METRICS: rows.with_run(metrics[list(METRICS_COLUMNS)], flow_run_id),
            LEADERBOARD: rows.with_run(leaderboard_long(leaderboard), flow_run_id),
        }
        extra = {
            BT_TIMINGS: timings,
            BT_FAILURES: failures,
            BT_FOLD_INFO: fold_info,
            BT_QUALITY: quality,
            BT_TUNING: tuning,
        }
        for name, frame in extra.items():
            if frame is not None:
                tables[name] = rows.with_run(frame, flow_run_id)
        if champions is not None:  # in the run's transaction: a run is never stored without its champions
            tables[CHAMPIONS] = _champion_rows(champions, flow_run_id, run[CREATED_AT].iloc[0])
        self._replace_run(flow_run_id, tables)
        log.info("stored backtest run %s: %d forecast rows, %d metric rows", flow_run_id, len(forecasts), len(metrics))

    def score_live(self) -> int:
        """Score every live forecast against the stored price of its session, as the prices are now (idempotent):
        a price that changed is re-scored, one that was removed unscores its rows. Returns rows newly scored."""
        if not self.path.exists():
            return 0
        with self._transaction() as con:
            if not rows.has_table(con, PRICES):
                return 0
            before = rows.count(con, f"SELECT count(*) FROM {SCORES}")
            changed = rows.count(con, CHANGED)
            con.execute(UNSCORE)
            kept = rows.count(con, f"SELECT count(*) FROM {SCORES}")
            con.execute(SCORE)
            after = rows.count(con, f"SELECT count(*) FROM {SCORES}")
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
        sql = f"SELECT * FROM {LIVE} {where} ORDER BY {CREATED_AT}, {RUN_ID}, {ID}, {MODEL}, {H}"
        return rows.dated(self._query(sql, params))

    def live_scores(self) -> pd.DataFrame:
        """Scored live forecast rows joined with their forecast (as_of, yhat, intervals)."""
        sql = (
            f"SELECT f.{AS_OF}, s.*, f.{YHAT} FROM {SCORES} s JOIN {LIVE} f "
            f"USING ({RUN_ID}, {ID}, {MODEL}, {H}) ORDER BY f.{AS_OF}, s.{ID}, s.{MODEL}, s.{H}"
        )
        return rows.dated(self._query(sql, []))

    def live_record(self, *, by: tuple[str, ...] = (MODEL,)) -> pd.DataFrame:
        """Each model's live track record: forecasts made and scored, MAE, MASE, hit rate, interval coverage."""
        keys = ", ".join(by)
        sql = f"""
            SELECT {", ".join(f"f.{k}" for k in by)}, count(*) AS {N_FORECASTS}, count(s.{Y}) AS {N_SCORED},
                   avg(s.{ABS_ERROR}) AS {MAE}, avg(s.{SCALED_ERROR}) AS {MASE},
                   avg(s.{DIRECTION_HIT}) AS {HIT_RATE},
                   avg(CAST(s.{COVERED_80} AS DOUBLE)) AS {COVERAGE_80},
                   avg(CAST(s.{COVERED_95} AS DOUBLE)) AS {COVERAGE_95},
                   max(f.{AS_OF}) AS {LAST_AS_OF}
            FROM {LIVE} f LEFT JOIN {SCORES} s USING ({RUN_ID}, {ID}, {MODEL}, {H})
            GROUP BY {", ".join(f"f.{k}" for k in by)} ORDER BY {MASE} NULLS LAST, {keys}
        """
        return rows.dated(self._query(sql, []))

    def backtest_runs(self) -> pd.DataFrame:
        """One row per stored backtest run, newest first."""
        return self._query(f"SELECT * FROM {RUNS} ORDER BY {CREATED_AT} DESC, {RUN_ID}", [])

    def leaderboards(self, *, last: int | None = None) -> pd.DataFrame:
        """Past leaderboards, long (flow_run_id, created_at, position, model, metric, value), newest run first."""
        limit = f"LIMIT {int(last)}" if last else ""
        sql = f"""
            WITH runs AS (SELECT {RUN_ID}, {CREATED_AT} FROM {RUNS} ORDER BY {CREATED_AT} DESC {limit})
            SELECT r.{RUN_ID}, r.{CREATED_AT}, l.{POSITION}, l.{MODEL}, l.{METRIC}, l.{VALUE}
            FROM {LEADERBOARD} l JOIN runs r USING ({RUN_ID})
            ORDER BY r.{CREATED_AT} DESC, r.{RUN_ID}, l.{POSITION}, l.{METRIC}
        """
        return self._query(sql, [])

    def backtest_table(self, name: str, flow_run_id: str) -> pd.DataFrame:
        """One stored backtest table (one of RUN_TABLES' values, e.g. backtest_forecasts) of a run."""
        if name not in RUN_TABLES.values():
            raise DataError(f"no backtest table {name!r}; use one of {', '.join(RUN_TABLES.values())}")
        frame = rows.dated(self._query(f"SELECT * FROM {name} WHERE {RUN_ID} = ?", [flow_run_id]))
        return frame.drop(columns=[RUN_ID])

    def resolve_run(self, run: str | None = None) -> str:
        """The full flow-run id of `run` (an id or a unique prefix of one); None or 'latest' is the newest run."""
        runs = self.backtest_runs() if self.path.exists() else pd.DataFrame({RUN_ID: []})
        if runs.empty:
            raise DataError(f"no backtest runs stored in {self.path}; run `pricecast backtest` first")
        return str(_match_run(runs, run)[RUN_ID])

    def backtest_run(self, flow_run_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        """Every stored table of one run (keys of RUN_TABLES) and its meta dict, as written by write_backtest."""
        run = self._query(f"SELECT {META} FROM {RUNS} WHERE {RUN_ID} = ?", [flow_run_id])
        if run.empty:
            raise DataError(f"no backtest run {flow_run_id!r} in {self.path}; see `pricecast report --list`")
        tables = {key: self.backtest_table(name, flow_run_id) for key, name in RUN_TABLES.items()}
        return tables, json.loads(run[META].iloc[0] or "{}")

    # ---- live monitoring reads (store.monitor compares them) ----------------------------------------------
    def live_score_window(self, *, last_as_of: int) -> pd.DataFrame:
        """Scored live rows of each (unique_id, model)'s latest `last_as_of` scored as_of dates, one row per
        (unique_id, model, as_of, h): a session forecast twice (a rerun) counts once, from the newer run.

        Returns unique_id, model, as_of, h, ds, scaled_error, covered_95 (NULL without intervals), resolved_model
        (the model a `champion` row ran; NULL on other rows).
        """
        sql = f"""
            WITH scored AS (
                SELECT f.{ID}, f.{MODEL}, f.{AS_OF}, s.{H}, s.{DS}, s.{SCALED_ERROR}, s.{COVERED_95},
                       f.{RESOLVED_MODEL},
                       row_number() OVER (PARTITION BY f.{ID}, f.{MODEL}, f.{AS_OF}, s.{H}
                                          ORDER BY f.{CREATED_AT} DESC, f.{RUN_ID} DESC) AS newest
                FROM {SCORES} s JOIN {LIVE} f USING ({RUN_ID}, {ID}, {MODEL}, {H})
            ), ranked AS (
                SELECT *, dense_rank() OVER (PARTITION BY {ID}, {MODEL} ORDER BY {AS_OF} DESC) AS age
                FROM scored WHERE newest = 1
            )
            SELECT {ID}, {MODEL}, {AS_OF}, {H}, {DS}, {SCALED_ERROR}, {COVERED_95}, {RESOLVED_MODEL} FROM ranked
            WHERE age <= ? ORDER BY {ID}, {MODEL}, {AS_OF}, {H}
        """
        return rows.dated(self._query(sql, [int(last_as_of)]))

    def newest_backtest_metrics(self, metrics: tuple[str, ...]) -> pd.DataFrame:
        """Per (unique_id, model), the `metrics` by horizon step (mean over folds) of the newest stored backtest
        run that has any of them for that pair; other pairs of other runs are not mixed in.

        Returns unique_id, model, h, metric, value, flow_run_id, created_at (of the run).
        """
        names = ", ".join("?" for _ in metrics)
        sql = f"""
            WITH pairs AS (
                SELECT m.{ID}, m.{MODEL}, m.{RUN_ID}, r.{CREATED_AT},
                       row_number() OVER (PARTITION BY m.{ID}, m.{MODEL}
                                          ORDER BY r.{CREATED_AT} DESC, m.{RUN_ID} DESC) AS newest
                FROM (SELECT DISTINCT {RUN_ID}, {ID}, {MODEL} FROM {BT_METRICS} WHERE {METRIC} IN ({names})) m
                JOIN {RUNS} r USING ({RUN_ID})
            )
            SELECT m.{ID}, m.{MODEL}, m.{H}, m.{METRIC}, avg(m.{VALUE}) AS {VALUE}, p.{RUN_ID}, p.{CREATED_AT}
            FROM {BT_METRICS} m JOIN pairs p USING ({RUN_ID}, {ID}, {MODEL})
            WHERE p.newest = 1 AND m.{METRIC} IN ({names})
            GROUP BY m.{ID}, m.{MODEL}, m.{H}, m.{METRIC}, p.{RUN_ID}, p.{CREATED_AT}
            ORDER BY m.{ID}, m.{MODEL}, m.{METRIC}, m.{H}
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
        run = rows.run_row(
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
            EV_PREDICTIONS: rows.with_run(predictions[list(EVENT_PREDICTION_COLUMNS)], flow_run_id),
            EV_METRICS: rows.with_run(metrics[list(METRICS_COLUMNS)], flow_run_id),
            EV_LEADERBOARD: rows.with_run(leaderboard_long(leaderboard), flow_run_id),
            EV_TIMINGS: rows.with_run(timings, flow_run_id),
            EV_FAILURES: rows.with_run(failures, flow_run_id),
        }
        if probabilities is not None:
            tables[LIVE_EVENTS] = rows.with_run(probabilities[list(LIVE_EVENT_COLUMNS)], flow_run_id)
        self._replace_run(flow_run_id, tables, stamped=(LIVE_EVENTS,))
        log.info("stored event run %s: %d prediction rows", flow_run_id, len(predictions))

    def event_runs(self) -> pd.DataFrame:
        """One row per stored event run, newest first."""
        return self._query(f"SELECT * FROM {EVENT_RUNS} ORDER BY {CREATED_AT} DESC, {RUN_ID}", [])

    def event_run(self, flow_run_id: str) -> tuple[dict[str, pd.DataFrame], dict[str, Any]]:
        """Every stored table of one event run (keys of EVENT_RUN_TABLES) and its meta dict."""
        run = self._query(f"SELECT {META} FROM {EVENT_RUNS} WHERE {RUN_ID} = ?", [flow_run_id])
        if run.empty:
            raise DataError(f"no event run {flow_run_id!r} in {self.path}; see `pricecast report --list`")
        tables = {}
        for key, name in EVENT_RUN_TABLES.items():
            frame = rows.dated(self._query(f"SELECT * FROM {name} WHERE {RUN_ID} = ?", [flow_run_id]))
            tables[key] = frame.drop(columns=[RUN_ID, *([CREATED_AT] if name == LIVE_EVENTS else [])])
        return tables, json.loads(run[META].iloc[0] or "{}")

    def live_event_probabilities(self, flow_run_id: str | None = None) -> pd.DataFrame:
        """Stored live event probabilities (all runs, or one), oldest run first."""
        where, params = (f"WHERE {RUN_ID} = ?", [flow_run_id]) if flow_run_id else ("", [])
        sql = f"SELECT * FROM {LIVE_EVENTS} {where} ORDER BY {CREATED_AT}, {RUN_ID}, {ID}, {MODEL}"
        return rows.dated(self._query(sql, params))

    def stored_runs(self) -> pd.DataFrame:
        """Price and event runs together, newest first: flow_run_id, task, created_at, tickers, models, n_rows,
        n_failures (`pricecast report --list`)."""
        if not self.path.exists():
            return pd.DataFrame(columns=list(STORED_RUN_COLUMNS))
        cols = f"{CREATED_AT}, {TICKERS}, {MODELS}"
        sql = f"""
            SELECT {RUN_ID}, '{TASK_PRICE}' AS {TASK}, {cols}, {N_FORECAST_ROWS} AS {N_ROWS}, {N_FAILURES}
            FROM {RUNS}
            UNION ALL
            SELECT {RUN_ID}, '{TASK_EVENT}' AS {TASK}, {cols}, {N_PREDICTION_ROWS} AS {N_ROWS}, {N_FAILURES}
            FROM {EVENT_RUNS}
            ORDER BY {CREATED_AT} DESC, {RUN_ID}
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
        return str(found[TASK]), str(found[RUN_ID])

    # ---- champions of the production loop (written by write_backtest(champions=...)) -------------------------
    def champions(self, *, latest: bool = True) -> pd.DataFrame:
        """The newest stored champion of each ticker (latest=True), or every run's champions; newest first.

        Columns CHAMPION_TABLE_COLUMNS; `params` is the JSON of the model's parameters in that backtest.
        """
        newest = (
            f"QUALIFY row_number() OVER (PARTITION BY {ID} ORDER BY {CREATED_AT} DESC, {RUN_ID} DESC) = 1"
            if latest
            else ""
        )
        sql = f"SELECT * FROM {CHAMPIONS} {newest} ORDER BY {CREATED_AT} DESC, {RUN_ID} DESC, {ID}"
        return self._query(sql, [])

    def champion_history(self) -> pd.DataFrame:
        """Every run's champion per ticker, oldest run first, with `previous_model`: the ticker's champion in its
        previous run (NULL in its first); rows where model differs from previous_model are the changes."""
        sql = f"""
            SELECT *, lag({MODEL}) OVER (PARTITION BY {ID} ORDER BY {CREATED_AT}, {RUN_ID}) AS {PREVIOUS_MODEL}
            FROM {CHAMPIONS} ORDER BY {CREATED_AT}, {RUN_ID}, {ID}
        """
        return self._query(sql, [])

    # ---- connections ----------------------------------------------------------------------------------------
    def _replace_run(
        self, flow_run_id: str, tables: Mapping[str, pd.DataFrame], *, stamped: tuple[str, ...] = ()
    ) -> None:
        """One transaction: every table's rows of the run deleted, then the new ones inserted (`stamped` tables
        get created_at = now), so a retried write replaces the run instead of doubling it."""
        with self._transaction() as con:
            for name, frame in tables.items():
                con.execute(f"DELETE FROM {name} WHERE {RUN_ID} = ?", [flow_run_id])
                rows.insert(con, name, frame, extra=_NOW if name in stamped else "")

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

    def _connect(self) -> AbstractContextManager[duckdb.DuckDBPyConnection]:
        """A fresh connection with the tables in place, closed afterwards; waits out another writer's lock."""
        return locked_connection(
            self.path,
            ddl=ALL_DDL,
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
        return pd.DataFrame({POSITION: pd.Series(dtype="int64"), MODEL: [], METRIC: [], VALUE: []})
    board = leaderboard.reset_index(drop=True)
    board.insert(0, POSITION, np.arange(1, len(board) + 1))
    long = board.melt(id_vars=[POSITION, MODEL], var_name=METRIC, value_name=VALUE)
    long[VALUE] = pd.to_numeric(long[VALUE].astype("object").where(long[VALUE].notna(), None), errors="coerce")
    long[VALUE] = long[VALUE].astype("float64")
    long[MODEL] = long[MODEL].astype(str)
    return long.sort_values([POSITION, METRIC], kind="stable").reset_index(drop=True)


def _live_frame(forecasts: pd.DataFrame, flow_run_id: str) -> pd.DataFrame:
    missing = [c for c in LIVE_COLUMNS if c != RUN_ID and c not in forecasts.columns]
    if missing:
        raise DataError(f"cannot store live forecasts: missing columns {missing}; build them with live_forecast_frame")
    frame = rows.with_run(forecasts[[c for c in LIVE_COLUMNS if c != RUN_ID]], flow_run_id)
    resolved = forecasts.get(RESOLVED_MODEL, pd.Series(None, index=forecasts.index, dtype=object))
    frame[RESOLVED_MODEL] = resolved.astype(object).where(resolved.notna(), None).to_numpy()  # NULL unless champion
    dup = frame.duplicated([ID, MODEL, H])
    if dup.any():
        first = frame.loc[dup].iloc[0]
        raise DataError(f"live forecasts repeat (ticker, model, h) {first[ID]}, {first[MODEL]}, {first[H]}; dedupe")
    return frame


def _match_run(runs: pd.DataFrame, run: str | None) -> pd.Series:
    """The row of `runs` (newest first) that `run` names: an id or a unique prefix; None or 'latest' is the first."""
    if run is None or run == "latest":
        return runs.iloc[0]
    matches = runs[runs[RUN_ID].astype(str).str.startswith(run)]
    if len(matches) > 1:  # list the runs it matches, with their dates, so the user can pick a longer prefix
        rows = matches.head(10)
        listed = ", ".join(f"{r[RUN_ID]} ({str(r[CREATED_AT])[:16]})" for _, r in rows.iterrows())
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
    frame = rows.with_run(champions[list(CHAMPION_TABLE_COLUMNS[2:])], flow_run_id)
    frame.insert(1, CREATED_AT, pd.Timestamp(created_at))
    return frame
