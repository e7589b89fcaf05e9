"""Panel schema, leakage-free indicators, targets, windows, scaling and trading calendars (pure pandas)."""
