"""Results store: live forecasts, their scores against later prices, and backtest tables keyed by flow-run id."""
