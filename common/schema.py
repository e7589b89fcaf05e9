"""Every table and column name of pricecast, each defined once: no string literals of these names elsewhere.

Grouped by table. Where one name serves several tables (`count`, `threshold`, `position`, `n`), it is defined
once here and its comment says what it holds in each. Tuples are a table's columns in their stored order.
tests/test_layering.py scans the other packages for module-level assignments of these values, so a name
re-declared elsewhere fails a test instead of drifting.
"""

from __future__ import annotations

# ---- the long panel ---------------------------------------------------------------------------------------
# The one exchange format (as in statsforecast): a long frame of unique_id, ds, y.
ID = "unique_id"  # the ticker, always a string ("005930" keeps its leading zeros)
DS = "ds"  # session date, tz-naive midnight Timestamp
Y = "y"  # the modelling target (adjusted close by default); also the y axis of an event ROC/PR curve point

# Raw bar columns after ingest normalisation.
OPEN = "open"
HIGH = "high"
LOW = "low"
CLOSE = "close"
ADJ_CLOSE = "adj_close"
VOLUME = "volume"
BAR_COLUMNS = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE, VOLUME)
PRICE_COLUMNS = (OPEN, HIGH, LOW, CLOSE, ADJ_CLOSE)

# Validated price panel: unique_id, ds, open, high, low, close, adj_close, volume, y.
PANEL_COLUMNS = (ID, DS, *BAR_COLUMNS, Y)

# Calendar features are known in advance for any future session; their names share this prefix.
CALENDAR_PREFIX = "cal_"

# ---- the price store (ingest.price_store.PriceStore; the results store joins its prices) -------------------
PRICES = "prices"  # validated daily bars, one row per (source, unique_id, ds)
CALENDARS = "calendars"  # each ticker's trading calendar (features.calendar), kept so later runs use the same
SOURCE = "source"  # the data source a bar (or a live forecast) came from
INGESTED_AT = "ingested_at"
CALENDAR, HOW, CHOSEN_AT = "calendar", "how", "chosen_at"  # calendars: the calendar's name and how it was chosen
PRICE_STORE_COLUMNS = (SOURCE, ID, DS, *BAR_COLUMNS, INGESTED_AT)

# ---- forecasts (Forecaster.predict) -----------------------------------------------------------------------
H = "h"  # 1-based horizon step
YHAT = "yhat"
LO_80, HI_80 = "yhat_lo_80", "yhat_hi_80"
LO_95, HI_95 = "yhat_lo_95", "yhat_hi_95"
INTERVAL_COLUMNS = (LO_80, HI_80, LO_95, HI_95)
LEVELS = (80, 95)
FORECAST_COLUMNS = (ID, DS, H, YHAT)

# ---- backtest tables: forecasts, metrics, timings -----------------------------------------------------------
MODEL = "model"
FOLD = "fold"
CUTOFF = "cutoff"
BACKTEST_COLUMNS = (ID, MODEL, FOLD, CUTOFF, DS, H, Y, YHAT, *INTERVAL_COLUMNS)
METRIC = "metric"
VALUE = "value"
METRICS_COLUMNS = (ID, MODEL, FOLD, H, METRIC, VALUE)
FIT_SECONDS, PREDICT_SECONDS = "fit_seconds", "predict_seconds"
REFIT = "refit"  # timings: True where the fold refitted the model, False where it only updated it
TIMING_COLUMNS = (ID, MODEL, FOLD, FIT_SECONDS, PREDICT_SECONDS, REFIT)

# ---- failures and fold info -------------------------------------------------------------------------------
ERROR_TYPE, MESSAGE = "error_type", "message"
FAILURE_COLUMNS = (ID, MODEL, FOLD, ERROR_TYPE, MESSAGE)
TRAIN_START, TRAIN_END = "train_start", "train_end"
LAST_Y = "last_y"  # last observed training value: direction hits and trading returns compare against it
SCALE_MAE, SCALE_MSE = "scale_mae", "scale_mse"  # the fold's in-sample one-step naive errors (MASE / RMSSE)
FOLD_INFO_COLUMNS = (ID, FOLD, CUTOFF, TRAIN_START, TRAIN_END, LAST_Y, SCALE_MAE, SCALE_MSE)

# Covariate feature columns (features.covariates): cov_<ticker slug>_<kind>[_lag<k>], aligned as of the target's close.
COVARIATE_PREFIX = "cov_"

# ---- data quality (ingest.quality's report, stored as backtest_quality) ---------------------------------------
CHECK = "check"
COUNT = "count"  # quality: rows the check counted; event calibration: origins in the bin
DETAIL = "detail"
QUALITY_COLUMNS = (ID, CHECK, COUNT, DETAIL)

# ---- forecast metrics: values of the metric column, columns of the leaderboards ------------------------------
MAE, MSE, RMSE = "mae", "mse", "rmse"
MAPE, SMAPE = "mape", "smape"
MASE, MSSE, RMSSE = "mase", "msse", "rmsse"
DIRECTIONAL_ACCURACY = "directional_accuracy"
COVERAGE_80, COVERAGE_95 = "coverage_80", "coverage_95"
WINKLER_80, WINKLER_95 = "winkler_80", "winkler_95"
MEAN_RANK = "mean_rank"  # rank among models within each series, averaged; 1 is best
BEATS_NAIVE_DM = "beats_naive_dm"
N_SERIES, N_FAILURES = "n_series", "n_failures"
N_SCALE_UNDEFINED = "n_scale_undefined"  # (series, fold) pairs of a model with no valid MASE/RMSSE scale
N_FOLDS = "n_folds"  # per-series table: folds the series was scored on
# The leaderboard: one row per model, ordered by MASE (the headline metric), mean rank kept as a column. Its
# probabilistic columns (scaled_crps, pinball, oos_r2) and in_mcs are defined in the blocks below.
LEADERBOARD_POINT_COLUMNS = (MODEL, MAE, RMSE, MAPE, SMAPE, MASE, RMSSE)

# ---- probabilistic scores and interval backtests (backtest.probabilistic, via backtest.metrics) ---------------
SCALED_CRPS = "scaled_crps"  # CRPS of the 5-quantile forecast over the fold's MASE scale (= MASE for a point)
PINBALL = "pinball"  # mean pinball loss at the four interval quantiles, over the same scale
OOS_R2 = "oos_r2"  # Campbell-Thompson out-of-sample R² of the h = 1 log return against the zero-return forecast
# Row helpers of oos_r2 (h = 1 rows of the metrics table only): squared return error of the model and of zero.
RET_SE, RET_SE0 = "ret_se", "ret_se0"
# Interval tests, one row per (model, level): `interval_level` the nominal coverage in percent (80, 95; not
# "level", a covariate kind), `n_intervals` the rows with both bounds (N_OBS = "n" is defined further down, for
# the DM tables), `n_transitions` the consecutive-fold pairs the independence test counted; rates are shares of
# rows with y outside [lo, hi].
INTERVAL_LEVEL = "interval_level"
N_INTERVALS, N_VIOLATIONS, N_TRANSITIONS = "n_intervals", "n_violations", "n_transitions"
VIOLATION_RATE, EXPECTED_RATE = "violation_rate", "expected_rate"
KUPIEC_STAT, KUPIEC_P = "kupiec_stat", "kupiec_p"  # unconditional coverage LR, chi²(1)
CHRISTOFFERSEN_STAT, CHRISTOFFERSEN_P = "christoffersen_stat", "christoffersen_p"  # independence LR, chi²(1)
CC_STAT, CC_P = "cc_stat", "cc_p"  # conditional coverage: the sum of both, chi²(2)
INTERVAL_TEST_COLUMNS = (
    MODEL,
    INTERVAL_LEVEL,
    N_INTERVALS,
    N_VIOLATIONS,
    VIOLATION_RATE,
    EXPECTED_RATE,
    KUPIEC_STAT,
    KUPIEC_P,
    N_TRANSITIONS,
    CHRISTOFFERSEN_STAT,
    CHRISTOFFERSEN_P,
    CC_STAT,
    CC_P,
)

# ---- the leaderboard's columns, in order (backtest.metrics.leaderboard; IN_MCS from backtest.multiple_testing) ----
IN_MCS = "in_mcs"  # the model is in the 10% Model Confidence Set (MCS_COLUMNS below)
LEADERBOARD_COLUMNS = (
    *LEADERBOARD_POINT_COLUMNS,
    SCALED_CRPS,
    PINBALL,
    OOS_R2,
    DIRECTIONAL_ACCURACY,
    COVERAGE_80,
    COVERAGE_95,
    WINKLER_95,
    MEAN_RANK,
    IN_MCS,
    BEATS_NAIVE_DM,
)

# ---- Diebold-Mariano tables (backtest.significance; the event task's tests against the base rate) -----------
REFERENCE = "reference"  # the model a test compares against
LOSS = "loss"  # squared or absolute error
STAT, P_VALUE, P_LESS = "stat", "p_value", "p_less"  # HLN statistic, two-sided p, one-sided p (model better)
N_OBS = "n"  # pairs (or origins) a statistic used
BETTER = "better"
DM_COLUMNS = (MODEL, REFERENCE, H, LOSS, STAT, P_VALUE, P_LESS, N_OBS, BETTER)

# ---- multiple testing over all models (backtest.multiple_testing): Model Confidence Set and Hansen's SPA -------
# Both test the fold × model loss matrix (one row per fold in time order, the fold's mean MASE over the (series, h)
# targets every model forecast). MCS (Hansen, Lunde & Nason 2011), one row per model: in the set iff
# mcs_p_value > mcs_size (the set's level, 0.10 = "the 10% set"); NaN p-values mean "not tested" (too few folds or
# models) and keep every model in the set. SPA (Hansen 2005), one row per test: H0 "no model beats `benchmark`",
# p-values by how the null is recentred (lower / consistent / upper; consistent is the one to read); `n_models`
# the alternatives tried (the benchmark not counted), `n` the folds, `best_model` the alternative with the lowest
# mean loss; `block_size` and `reps` the stationary bootstrap's mean block length and replications.
MCS_P_VALUE, MCS_SIZE = "mcs_p_value", "mcs_size"
MCS_COLUMNS = (MODEL, IN_MCS, MCS_P_VALUE, MCS_SIZE)
BENCHMARK, N_MODELS, BEST_MODEL = "benchmark", "n_models", "best_model"
SPA_P_LOWER, SPA_P_CONSISTENT, SPA_P_UPPER = "spa_p_lower", "spa_p_consistent", "spa_p_upper"
BLOCK_SIZE, REPS = "block_size", "reps"
SPA_COLUMNS = (BENCHMARK, N_MODELS, N_OBS, BEST_MODEL, SPA_P_LOWER, SPA_P_CONSISTENT, SPA_P_UPPER, BLOCK_SIZE, REPS)

# ---- trading evaluation (backtest.trading) ------------------------------------------------------------------
RULE = "rule"
N_ORIGINS = "n_origins"
HIT_RATE = "hit_rate"  # trading: share of in-market origins that made money; live record: mean direction hit
CUM_RETURN, BUY_HOLD_RETURN, EXCESS_RETURN = "cum_return", "buy_hold_return", "excess_return"
SHARPE, BUY_HOLD_SHARPE = "sharpe", "buy_hold_sharpe"
MAX_DRAWDOWN, TURNOVER = "max_drawdown", "turnover"
TRADING_COLUMNS = (
    ID,
    MODEL,
    RULE,
    N_ORIGINS,
    HIT_RATE,
    CUM_RETURN,
    BUY_HOLD_RETURN,
    EXCESS_RETURN,
    SHARPE,
    BUY_HOLD_SHARPE,
    MAX_DRAWDOWN,
    TURNOVER,
)
POSITION = "position"  # equity curves: the rule's position at an origin; stored leaderboards: the place (1 = best)
ASSET_RETURN, STRATEGY_RETURN = "asset_return", "strategy_return"
EQUITY, BUY_HOLD = "equity", "buy_hold"
EQUITY_COLUMNS = (ID, MODEL, RULE, CUTOFF, DS, POSITION, ASSET_RETURN, STRATEGY_RETURN, EQUITY, BUY_HOLD)

# ---- the refit trade-off table of the report (seconds spent against accuracy, per refit_every) ---------------
REFIT_EVERY = "refit_every"
SECONDS = "seconds"

# ---- model names the tables carry -------------------------------------------------------------------------
NAIVE = "naive"  # the random walk: the reference of every significance test
BUY_AND_HOLD = "buy_and_hold"  # the model name of buy-and-hold equity rows
CHAMPION = "champion"  # the model name forecast_flow resolves, per ticker, to the stored champion
BASE_RATE = "base_rate"  # the event task's climatology: every origin gets the training event rate

# ---- event task: predictions, metrics, significance, calibration, curves -----------------------------------
LABEL = "label"  # the event outcome column of the event frame (renamed to y in the predictions)
P = "p"  # predicted probability of the event
# `threshold` in event predictions: the fold's decision cut (chosen on its training tail); in live event
# probabilities and event runs: the event's rise x ("the close rises >= x within h sessions").
THRESHOLD = "threshold"
EVENT_PREDICTION_COLUMNS = (ID, MODEL, FOLD, CUTOFF, DS, H, Y, P, THRESHOLD)
ROC_AUC, PR_AUC, BRIER, BRIER_SKILL, LOG_LOSS = "roc_auc", "pr_auc", "brier", "brier_skill", "log_loss"
PRECISION, RECALL, F1 = "precision", "recall", "f1"
POSITIVE_RATE, EVENT_RATE = "positive_rate", "event_rate"
N_POS = "n_pos"
N_AUC_UNDEFINED = "n_auc_undefined"  # series whose scored set holds one class only (ROC/PR AUC undefined)
MODEL_LOSS, REFERENCE_LOSS = "model_brier", "reference_brier"
BEATS_BASE_RATE = "beats_base_rate"
EVENT_SIGNIFICANCE_COLUMNS = (
    MODEL,
    REFERENCE,
    LOSS,
    N_OBS,
    MODEL_LOSS,
    REFERENCE_LOSS,
    STAT,
    P_VALUE,
    P_LESS,
    BEATS_BASE_RATE,
)
EVENT_METRICS = (ROC_AUC, PR_AUC, BRIER, BRIER_SKILL, LOG_LOSS, PRECISION, RECALL, F1, POSITIVE_RATE, EVENT_RATE)
EVENT_LEADERBOARD_COLUMNS = (
    MODEL,
    *EVENT_METRICS,
    MEAN_RANK,
    N_SERIES,
    N_AUC_UNDEFINED,
    N_FAILURES,
    P_VALUE,
    P_LESS,
    BEATS_BASE_RATE,
)
BIN, BIN_LOWER, BIN_UPPER = "bin", "bin_lower", "bin_upper"
MEAN_PREDICTED, OBSERVED_FREQUENCY = "mean_predicted", "observed_frequency"
CALIBRATION_COLUMNS = (MODEL, BIN, BIN_LOWER, BIN_UPPER, MEAN_PREDICTED, OBSERVED_FREQUENCY, COUNT)
CURVE, X, AREA = "curve", "x", "area"  # ROC/PR curve points: which curve, x and y of the point, its area
CURVE_COLUMNS = (MODEL, CURVE, X, Y, AREA)

# ---- results store: table names (store.results_store.ResultStore) ---------------------------------------------
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
BT_TUNING = "backtest_tuning"  # what `+tuned` variants chose per fold (TUNING_COLUMNS)
# The tables of one backtest run, in the order ResultStore.backtest_run returns them (keys: its table keys).
RUN_TABLES = {
    "forecasts": BT_FORECASTS,
    "metrics": BT_METRICS,
    "leaderboard": LEADERBOARD,
    "timings": BT_TIMINGS,
    "failures": BT_FAILURES,
    "fold_info": BT_FOLD_INFO,
    "quality": BT_QUALITY,
    "tuning": BT_TUNING,
}
EVENT_RUNS = "event_runs"
EV_PREDICTIONS = "event_predictions"
EV_METRICS = "event_metrics"
EV_LEADERBOARD = "event_leaderboard"
EV_TIMINGS = "event_timings"
EV_FAILURES = "event_failures"
LIVE_EVENTS = "live_event_probabilities"
# The tables of one event run, in the order ResultStore.event_run returns them.
EVENT_RUN_TABLES = {
    "predictions": EV_PREDICTIONS,
    "metrics": EV_METRICS,
    "leaderboard": EV_LEADERBOARD,
    "timings": EV_TIMINGS,
    "failures": EV_FAILURES,
    "probabilities": LIVE_EVENTS,
}
CHAMPIONS = "champions"

# ---- results store: run rows (backtest_runs, event_runs) ------------------------------------------------------
RUN_ID = "flow_run_id"  # every stored row is keyed by the Prefect flow run that produced it
CREATED_AT = "created_at"
TICKERS, MODELS, META = "tickers", "models", "meta"
N_FORECAST_ROWS, N_PREDICTION_ROWS = "n_forecast_rows", "n_prediction_rows"
HORIZON = "horizon"  # event runs: the event's window h
TASK, N_ROWS = "task", "n_rows"  # ResultStore.stored_runs: price or event run, and its forecast/prediction rows
STORED_RUN_COLUMNS = (RUN_ID, TASK, CREATED_AT, TICKERS, MODELS, N_ROWS, N_FAILURES)

# ---- results store: live forecasts and their scores -----------------------------------------------------------
AS_OF = "as_of"  # the forecast origin: the series' last session
TARGET = "target"  # the price column the forecast predicts (close or adj_close)
LIVE_COLUMNS = (RUN_ID, AS_OF, SOURCE, TARGET, ID, MODEL, DS, H, YHAT, *INTERVAL_COLUMNS, LAST_Y, SCALE_MAE)
RESOLVED_MODEL = "resolved_model"  # live rows of the model `champion`: the model it resolved to (NULL elsewhere)
ABS_ERROR, SCALED_ERROR, DIRECTION_HIT = "abs_error", "scaled_error", "direction_hit"
COVERED_80, COVERED_95 = "covered_80", "covered_95"
SCORED_AT = "scored_at"
ACTUAL = "actual"  # the stored price of a live forecast's session, in its target column
N_FORECASTS, N_SCORED = "n_forecasts", "n_scored"  # live record and monitor: rows forecast, rows scored
LAST_AS_OF = "last_as_of"

# ---- results store: live event probabilities (backtest.event_live) ------------------------------------------
DECISION_THRESHOLD = "decision_threshold"  # max-F1 cut on the training tail (the backtest predictions' threshold)
N_TRAIN = "n_train"  # training samples: labelled rows with finite features
LIVE_EVENT_COLUMNS = (ID, MODEL, AS_OF, H, THRESHOLD, P, DECISION_THRESHOLD, TRAIN_END, N_TRAIN)

# ---- champions (backtest.champion chooses them; stored per run) --------------------------------------------
NAIVE_MASE, REASON, PARAMS = "naive_mase", "reason", "params"
CHAMPION_COLUMNS = (ID, MODEL, MASE, NAIVE_MASE, P_VALUE, REASON, PARAMS)
CHAMPION_TABLE_COLUMNS = (RUN_ID, CREATED_AT, *CHAMPION_COLUMNS)
PREVIOUS_MODEL = "previous_model"  # champion history: the ticker's champion in its previous run

# ---- tuning: what a `+tuned` variant chose (models.tuning), one row per (series, model, fold) ----------------
# `params` (as for champions) is a JSON object with sorted keys; `validation_mae` is the chosen trial's MAE on the
# validation tail of the fold's training window; `trials` how many trials ran. Folds between refits repeat their
# refit's choice.
VALIDATION_MAE, TRIALS = "validation_mae", "trials"
TUNING_COLUMNS = (ID, MODEL, FOLD, PARAMS, VALIDATION_MAE, TRIALS)

# ---- live monitor (store.monitor) -------------------------------------------------------------------------
LIVE_MASE, BACKTEST_MASE = "live_mase", "backtest_mase"
LIVE_COVERAGE_95, BACKTEST_COVERAGE_95 = "live_coverage_95", "backtest_coverage_95"
BREACH = "breach"
BACKTEST_RUN_ID = "backtest_run_id"
MONITOR_COLUMNS = (
    ID,
    MODEL,
    N_SCORED,
    LIVE_MASE,
    BACKTEST_MASE,
    LIVE_COVERAGE_95,
    BACKTEST_COVERAGE_95,
    BREACH,
    REASON,
    BACKTEST_RUN_ID,
)


def interval_columns(level: int) -> tuple[str, str]:
    """(lo, hi) column names for a central prediction interval at `level` percent."""
    return f"yhat_lo_{level}", f"yhat_hi_{level}"


# ---- diagnosis: did covariates or tuning help? (backtest.diagnosis), one row per variant of a base model -------
# `kind` is one of models.variants.KINDS; `mase_change` the variant's MASE over its plain model's minus 1 (-0.03 =
# 3% lower); `p_vs_plain` / `p_vs_naive` one-sided DM-HLN p-values of "the variant's loss is lower than the plain
# model's / naive's" (the verdict's loss and horizon); `n` the folds the test against plain used.
BASE_MODEL, KIND, MASE_CHANGE = "base_model", "kind", "mase_change"
P_VS_PLAIN, P_VS_NAIVE = "p_vs_plain", "p_vs_naive"
DIAGNOSIS_COLUMNS = (
    BASE_MODEL,
    KIND,
    MODEL,
    MASE,
    MASE_CHANGE,
    P_VS_PLAIN,
    N_OBS,
    P_VS_NAIVE,
    BEATS_NAIVE_DM,
    N_FAILURES,
)
