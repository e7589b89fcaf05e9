"""Exception types shared by every pricecast package; each says what failed, where, and how to fix it."""

from __future__ import annotations


class PricecastError(Exception):
    """Base class of every error pricecast raises on purpose (the CLI prints these as one line)."""


class DataError(PricecastError, ValueError):
    """Input data is unusable: names the ticker, the column and the first offending rows."""


class ConfigError(PricecastError, ValueError):
    """A parameter or option is invalid (unknown model, horizon <= 0, start after end, ...)."""


class SourceError(PricecastError):
    """A data source could not be read or reached (after retries for network sources)."""


class StoreDamagedError(DataError):
    """A DuckDB store file is truncated or corrupt: names the file and the recovery step (never retried)."""


class PortInUseError(PricecastError, OSError):
    """A server could not listen on its port because another process holds it; names the port and the option."""


class ModelFitError(PricecastError):
    """A model could not fit or forecast one series; carries the model, the series and the reason.

    Callers (the backtest engine) catch this one type, record it and carry on.
    """

    def __init__(self, model: str, unique_id: str, reason: str):
        self.model = model
        self.unique_id = unique_id
        self.reason = reason
        super().__init__(f"{model} on {unique_id}: {reason}")

    def __reduce__(self) -> tuple[type[ModelFitError], tuple[str, str, str]]:
        # Keep picklable across process/Dask workers.
        return (type(self), (self.model, self.unique_id, self.reason))


class NotFittedError(PricecastError, RuntimeError):
    """predict()/update() was called before fit()."""
