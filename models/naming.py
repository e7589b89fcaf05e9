"""A model instance's `name`: the registry key the user typed, since one class can serve several keys.

models.rnn:RecurrentForecaster is registered as rnn, lstm and gru (the cell is a parameter, as in Darts), so a
class attribute cannot say which one a given instance is. `make_model` and `make_event_model` name each instance
after the key they built it for (`named()`); every message the model raises and every stored fit then say "lstm"
when the user typed lstm. An instance built from its class directly reports `default_name`: a class attribute
for single-key classes, a property where a parameter decides (the recurrent models derive it from the cell).

Descriptions are not here: the registry (models.ModelSpec.summary) is their one source.
"""

from __future__ import annotations

from typing import Self


class RegistryNamed:
    """Mixin giving `name` (read-only): the registry key set by `named()`, else `default_name`."""

    _name: str | None = None  # the registry key; a leading underscore keeps it out of get_params()

    @property
    def default_name(self) -> str:
        """The name of an instance not made through the registry; subclasses override it with a string."""
        return type(self).__name__.lower()

    @property
    def name(self) -> str:
        """The name the user typed (the registry key), or `default_name` for an instance built directly."""
        return self._name or self.default_name

    def named(self, name: str) -> Self:
        """Name this instance after the registry key it was made for; returns the instance."""
        self._name = str(name)
        return self
