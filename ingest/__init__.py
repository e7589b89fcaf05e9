"""Ingest: read sources, validate into a clean long panel with a data-quality summary, keep an incremental DuckDB price store."""
