"""The DuckDB schema of the results store: every CREATE TABLE, and the SQL that scores live forecasts.

Table and column names come from common.schema; this module only says how they are laid out in DuckDB.
`ALL_DDL` is what store.results_store.ResultStore runs on every connection (CREATE ... IF NOT EXISTS, so a
store written by an older pricecast gains the newer tables and columns and keeps its rows).
"""

from __future__ import annotations

from common.schema import (
    ABS_ERROR,
    ACTUAL,
    ADJ_CLOSE,
    AS_OF,
    BT_FAILURES,
    BT_FOLD_INFO,
    BT_FORECASTS,
    BT_METRICS,
    BT_QUALITY,
    BT_TIMINGS,
    BT_TUNING,
    CHAMPIONS,
    CHECK,
    CLOSE,
    COUNT,
    COVERED_80,
    COVERED_95,
    CREATED_AT,
    CUTOFF,
    DECISION_THRESHOLD,
    DETAIL,
    DIRECTION_HIT,
    DS,
    ERROR_TYPE,
    EV_FAILURES,
    EV_LEADERBOARD,
    EV_METRICS,
    EV_PREDICTIONS,
    EV_TIMINGS,
    EVENT_RUNS,
    FIT_SECONDS,
    FOLD,
    HI_80,
    HI_95,
    HORIZON,
    ID,
    INTERVAL_COLUMNS,
    LAST_Y,
    LEADERBOARD,
    LIVE,
    LIVE_EVENTS,
    LO_80,
    LO_95,
    MASE,
    MESSAGE,
    META,
    METRIC,
    MODEL,
    MODELS,
    N_FAILURES,
    N_FORECAST_ROWS,
    N_PREDICTION_ROWS,
    N_TRAIN,
    NAIVE_MASE,
    P_VALUE,
    PARAMS,
    POSITION,
    PREDICT_SECONDS,
    PRICES,
    REASON,
    REFIT,
    RESOLVED_MODEL,
    RUN_ID,
    RUNS,
    SCALE_MAE,
    SCALE_MSE,
    SCALED_ERROR,
    SCORED_AT,
    SCORES,
    SOURCE,
    TARGET,
    THRESHOLD,
    TICKERS,
    TRAIN_END,
    TRAIN_START,
    TRIALS,
    VALIDATION_MAE,
    VALUE,
    YHAT,
    H,
    P,
    Y,
)

_intervals_ddl = ", ".join(f"{c} DOUBLE" for c in INTERVAL_COLUMNS)

# ==== live forecasts, their scores and backtest runs (the price task) ==========================================
DDL = f"""
CREATE TABLE IF NOT EXISTS {LIVE} (
    {RUN_ID} VARCHAR NOT NULL, {AS_OF} DATE NOT NULL, {SOURCE} VARCHAR NOT NULL, {TARGET} VARCHAR NOT NULL,
    {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {DS} DATE NOT NULL, {H} INTEGER NOT NULL,
    {YHAT} DOUBLE, {_intervals_ddl}, {LAST_Y} DOUBLE, {SCALE_MAE} DOUBLE, {CREATED_AT} TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL}, {H})
);
CREATE TABLE IF NOT EXISTS {SCORES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {H} INTEGER NOT NULL,
    {DS} DATE NOT NULL, {Y} DOUBLE, {ABS_ERROR} DOUBLE, {SCALED_ERROR} DOUBLE, {DIRECTION_HIT} DOUBLE,
    {COVERED_80} BOOLEAN, {COVERED_95} BOOLEAN, {SCORED_AT} TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL}, {H})
);
CREATE TABLE IF NOT EXISTS {RUNS} (
    {RUN_ID} VARCHAR PRIMARY KEY, {CREATED_AT} TIMESTAMP NOT NULL, {TICKERS} VARCHAR, {MODELS} VARCHAR,
    {N_FORECAST_ROWS} INTEGER, {N_FAILURES} INTEGER, {META} VARCHAR
);
CREATE TABLE IF NOT EXISTS {BT_FORECASTS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {CUTOFF} DATE, {DS} DATE,
    {H} INTEGER, {Y} DOUBLE, {YHAT} DOUBLE, {_intervals_ddl}
);
CREATE TABLE IF NOT EXISTS {BT_METRICS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {H} INTEGER, {METRIC} VARCHAR,
    {VALUE} DOUBLE
);
CREATE TABLE IF NOT EXISTS {LEADERBOARD} (
    {RUN_ID} VARCHAR NOT NULL, {POSITION} INTEGER, {MODEL} VARCHAR, {METRIC} VARCHAR, {VALUE} DOUBLE
);
CREATE TABLE IF NOT EXISTS {BT_TIMINGS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {FIT_SECONDS} DOUBLE,
    {PREDICT_SECONDS} DOUBLE, {REFIT} BOOLEAN
);
CREATE TABLE IF NOT EXISTS {BT_FAILURES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {ERROR_TYPE} VARCHAR,
    {MESSAGE} VARCHAR
);
CREATE TABLE IF NOT EXISTS {BT_FOLD_INFO} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {FOLD} INTEGER, {CUTOFF} DATE, {TRAIN_START} DATE, {TRAIN_END} DATE,
    {LAST_Y} DOUBLE, {SCALE_MAE} DOUBLE, {SCALE_MSE} DOUBLE
);
CREATE TABLE IF NOT EXISTS {BT_QUALITY} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, "{CHECK}" VARCHAR, {COUNT} BIGINT, {DETAIL} VARCHAR
);
CREATE TABLE IF NOT EXISTS {BT_TUNING} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {PARAMS} VARCHAR,
    {VALIDATION_MAE} DOUBLE, {TRIALS} INTEGER
);
"""

# ==== event task (flows.event_backtest): runs, their tables, live event probabilities =========================
# Tables of their own rather than a `task` column on backtest_runs: an event run's predictions are probabilities
# (p, decision threshold), not price paths, and every reader of the price tables (history, leaderboards, the
# live monitor) stays price-only. ResultStore.stored_runs and resolve_task_run list and resolve both kinds.
EVENT_DDL = f"""
CREATE TABLE IF NOT EXISTS {EVENT_RUNS} (
    {RUN_ID} VARCHAR PRIMARY KEY, {CREATED_AT} TIMESTAMP NOT NULL, {TICKERS} VARCHAR, {MODELS} VARCHAR,
    {THRESHOLD} DOUBLE, {HORIZON} INTEGER, {N_PREDICTION_ROWS} INTEGER, {N_FAILURES} INTEGER, {META} VARCHAR
);
CREATE TABLE IF NOT EXISTS {EV_PREDICTIONS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {CUTOFF} DATE, {DS} DATE,
    {H} INTEGER, {Y} DOUBLE, {P} DOUBLE, {THRESHOLD} DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_METRICS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {H} INTEGER, {METRIC} VARCHAR,
    {VALUE} DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_LEADERBOARD} (
    {RUN_ID} VARCHAR NOT NULL, {POSITION} INTEGER, {MODEL} VARCHAR, {METRIC} VARCHAR, {VALUE} DOUBLE
);
CREATE TABLE IF NOT EXISTS {EV_TIMINGS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {FIT_SECONDS} DOUBLE,
    {PREDICT_SECONDS} DOUBLE, {REFIT} BOOLEAN
);
CREATE TABLE IF NOT EXISTS {EV_FAILURES} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR, {MODEL} VARCHAR, {FOLD} INTEGER, {ERROR_TYPE} VARCHAR,
    {MESSAGE} VARCHAR
);
CREATE TABLE IF NOT EXISTS {LIVE_EVENTS} (
    {RUN_ID} VARCHAR NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL, {AS_OF} DATE NOT NULL,
    {H} INTEGER NOT NULL, {THRESHOLD} DOUBLE NOT NULL, {P} DOUBLE NOT NULL, {DECISION_THRESHOLD} DOUBLE,
    {TRAIN_END} DATE, {N_TRAIN} INTEGER, {CREATED_AT} TIMESTAMP NOT NULL,
    PRIMARY KEY ({RUN_ID}, {ID}, {MODEL})
);
"""

# ==== champions of the production loop (backtest.champion chooses them, forecast_flow forecasts with them) ====
# ALTER ... IF NOT EXISTS: stores created before the column existed gain it (NULL on their old rows).
CHAMPIONS_DDL = f"""
CREATE TABLE IF NOT EXISTS {CHAMPIONS} (
    {RUN_ID} VARCHAR NOT NULL, {CREATED_AT} TIMESTAMP NOT NULL, {ID} VARCHAR NOT NULL, {MODEL} VARCHAR NOT NULL,
    {MASE} DOUBLE, {NAIVE_MASE} DOUBLE, {P_VALUE} DOUBLE, {REASON} VARCHAR, {PARAMS} VARCHAR,
    PRIMARY KEY ({RUN_ID}, {ID})
);
ALTER TABLE {LIVE} ADD COLUMN IF NOT EXISTS {RESOLVED_MODEL} VARCHAR;
"""

ALL_DDL = DDL + EVENT_DDL + CHAMPIONS_DDL

# ==== scoring live forecasts against the price store's prices (same file) =======================================
# Every live forecast with the stored price of its session (`actual`: the forecast's target column; NULL when
# the price row has no value there).
_ACTUALS = f"""
SELECT f.*, CASE WHEN f.{TARGET} = '{ADJ_CLOSE}' THEN p.{ADJ_CLOSE} ELSE p.{CLOSE} END AS {ACTUAL}
FROM {LIVE} f JOIN {PRICES} p ON p.{SOURCE} = f.{SOURCE} AND p.{ID} = f.{ID} AND p.{DS} = f.{DS}
"""
# Scores every live forecast whose session now has a stored price; the price column is the forecast's target.
# direction_hit follows backtest.metrics.direction_hit: 1 same sign, 0 opposite, 0.5 when either move is zero.
SCORE = f"""
INSERT OR REPLACE INTO {SCORES}
SELECT {RUN_ID}, {ID}, {MODEL}, {H}, {DS}, {ACTUAL}, abs({ACTUAL} - {YHAT}),
       abs({ACTUAL} - {YHAT}) / nullif({SCALE_MAE}, 0),
       CASE WHEN sign({YHAT} - {LAST_Y}) = 0 OR sign({ACTUAL} - {LAST_Y}) = 0 THEN 0.5
            ELSE CAST(sign({YHAT} - {LAST_Y}) = sign({ACTUAL} - {LAST_Y}) AS DOUBLE) END,
       CASE WHEN {LO_80} IS NULL THEN NULL ELSE {ACTUAL} BETWEEN {LO_80} AND {HI_80} END,
       CASE WHEN {LO_95} IS NULL THEN NULL ELSE {ACTUAL} BETWEEN {LO_95} AND {HI_95} END,
       CAST(now() AS TIMESTAMP)
FROM ({_ACTUALS}) joined
WHERE {ACTUAL} IS NOT NULL
"""
# Scores whose price is gone (a corrected file re-ingested without the row: ingest.price_store.PriceStore.replace) or
# no longer has the target: deleted, so the track record follows the store's current prices. A price that
# changed is re-scored by SCORE's INSERT OR REPLACE.
UNSCORE = f"""
DELETE FROM {SCORES} WHERE NOT EXISTS (
    SELECT 1 FROM ({_ACTUALS}) a
    WHERE a.{ACTUAL} IS NOT NULL AND a.{RUN_ID} = {SCORES}.{RUN_ID} AND a.{ID} = {SCORES}.{ID}
      AND a.{MODEL} = {SCORES}.{MODEL} AND a.{H} = {SCORES}.{H}
)
"""
# Scored rows whose stored price differs from the one they were scored against (logged, then re-scored).
CHANGED = f"""
SELECT count(*) FROM {SCORES} s JOIN ({_ACTUALS}) a USING ({RUN_ID}, {ID}, {MODEL}, {H})
WHERE a.{ACTUAL} IS NOT NULL AND s.{Y} IS DISTINCT FROM a.{ACTUAL}
"""
