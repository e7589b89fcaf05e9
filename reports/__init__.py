"""Renders backtest tables into the HTML report and Markdown for Prefect artifacts (reads tables, never models)."""
