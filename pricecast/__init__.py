"""pricecast: forecasting pipeline for daily market prices (console CLI and settings live here)."""

__version__ = "0.1.0"
