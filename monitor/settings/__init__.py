"""Every setting of the daemon in one typed model; nothing else reads the environment.

Sources, strongest first: keyword overrides (the CLI), `MONITOR_*` environment
variables, the TOML file named by `--config` or `MONITOR_CONFIG`, then defaults.
model.py is the model, rules.py the rules that tie several settings together,
loading.py reads the file and names every error.
"""

from monitor.settings.loading import ConfigError, format_validation_errors, load_settings
from monitor.settings.model import CONFIG_ENV, DEFAULT_TERMINAL_STATUSES, AuthMode, Settings

__all__ = [
    "CONFIG_ENV",
    "DEFAULT_TERMINAL_STATUSES",
    "AuthMode",
    "ConfigError",
    "Settings",
    "format_validation_errors",
    "load_settings",
]
