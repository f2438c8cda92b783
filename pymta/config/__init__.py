"""Configuration: reading Exim-style runtime configuration files into a :class:`Config`."""
from pymta.config.model import Config, ConfigError


def load_config(path: str, macros: dict[str, str] | None = None,
                builtin: dict[str, str] | None = None) -> Config:
    """Read the configuration file at ``path`` (see :func:`pymta.config.reader.load_config`)."""
    from pymta.config.reader import load_config as _load
    return _load(path, macros, builtin)


__all__ = ["Config", "ConfigError", "load_config"]
