"""Ingest: read sources, validate into a clean long panel with a quality summary, keep the DuckDB price store."""
