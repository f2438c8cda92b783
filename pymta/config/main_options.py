"""Typed access to the main-section options: ``config.main.primary_hostname``."""
from __future__ import annotations

from typing import Any, Iterator

from pymta.config.option_tables import main_options_table
from pymta.config.options import OptionSpec

# Options whose default is another option's value (as in Exim).
_DEFAULT_FROM = {
    "qualify_domain": "primary_hostname",
    "qualify_recipient": "qualify_domain",
}


class MainOptions:
    """The main options: every option of the table is an attribute with its typed value.

    Values not set in the file are the table defaults.  ``is_set(name)`` tells whether the
    file (or a macro-expanded line) set the option; ``hidden`` holds the names set with a
    ``hide`` prefix (``-bP`` will not display them).
    """

    def __init__(self, specs: dict[str, OptionSpec] | None = None):
        object.__setattr__(self, "_specs", specs if specs is not None else main_options_table())
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "hidden", set())
        # name -> (file, line) where the configuration set it, for error messages
        object.__setattr__(self, "locations", {})

    @property
    def specs(self) -> dict[str, OptionSpec]:
        """The option table (name -> :class:`OptionSpec`)."""
        return self._specs

    def set(self, name: str, value: Any, hide: bool = False) -> None:
        """Record a value read from the configuration file."""
        if name not in self._specs:
            raise KeyError(name)
        self._values[name] = value
        self._forget_cached()
        if hide:
            self.hidden.add(name)

    def is_set(self, name: str) -> bool:
        """True when the configuration set ``name`` explicitly."""
        return name in self._values

    def is_hidden(self, name: str) -> bool:
        """True when the value must not be displayed by -bP."""
        return name in self.hidden or (name in self._specs and self._specs[name].hidden)

    def get(self, name: str) -> Any:
        """The value of ``name`` (set value, else derived default, else table default)."""
        if name in self._values:
            return self._values[name]
        if name in _DEFAULT_FROM:
            return self.get(_DEFAULT_FROM[name])
        return self._specs[name].default

    def __getattr__(self, name: str) -> Any:
        specs = object.__getattribute__(self, "_specs")
        if name not in specs:
            raise AttributeError(f'main option "{name}" unknown')
        value = self.get(name)
        # Kept in the instance dict, so the next read is a plain attribute hit: a
        # session reads main options about a hundred times.
        self.__dict__[name] = value
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self._specs:
            self._values[name] = value
            self._forget_cached()
        else:
            object.__setattr__(self, name, value)

    def _forget_cached(self) -> None:
        """Drop the values :meth:`__getattr__` kept (a setting changes them, and the
        derived defaults of others)."""
        for name in [n for n in self.__dict__ if n in self._specs]:
            del self.__dict__[name]

    def items(self) -> Iterator[tuple[str, Any]]:
        """(name, value) for every main option, in name order."""
        for name in sorted(self._specs):
            yield name, self.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._specs
