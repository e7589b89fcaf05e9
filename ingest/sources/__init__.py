"""Data sources: bundled sample, CSV/Parquet files, yfinance, FinanceDataReader (KRX)."""
