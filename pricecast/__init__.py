"""pricecast: forecasting pipeline for daily market prices. This package is the console face: nothing imports it."""

__version__ = "0.1.0"
