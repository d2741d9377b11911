"""Reading the settings: the TOML file, the environment, and every error named."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from monitor.settings.model import CONFIG_ENV, Settings, toml_path


class ConfigError(Exception):
    """The configuration cannot be used; `errors` lists every problem, without values."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@contextmanager
def _toml_file(path: Path | None) -> Iterator[None]:
    token = toml_path.set(path)
    try:
        yield
    finally:
        toml_path.reset(token)


def load_settings(config_path: Path | str | None = None, **overrides: Any) -> Settings:
    """Build the settings, raising ConfigError that lists every problem found."""
    if config_path is None and os.environ.get(CONFIG_ENV):
        config_path = os.environ[CONFIG_ENV]
    path = Path(config_path) if config_path else None
    if path is not None:
        if not path.is_file():
            raise ConfigError([f"config file {path}: not found or not a file"])
        try:
            with path.open("rb") as fh:
                tomllib.load(fh)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"config file {path}: invalid TOML: {exc}"]) from None
        except OSError as exc:
            raise ConfigError([f"config file {path}: cannot read: {exc.strerror}"]) from None
    try:
        with _toml_file(path):
            return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(format_validation_errors(exc)) from None


# Env aliases pydantic reports as the location; the field's own name reads better.
_ALIAS_FIELDS = {"monitor_ak": "ak", "cloud_sdk_ak": "ak", "monitor_sk": "sk", "cloud_sdk_sk": "sk"}


def format_validation_errors(exc: ValidationError) -> list[str]:
    """One line per error, naming the setting; input values are left out (they may be secret)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        loc = _ALIAS_FIELDS.get(loc, loc)
        env = f"MONITOR_{loc.upper()}" if err["loc"] else ""
        if loc.startswith("otel_"):
            env = loc.upper()  # the standard OpenTelemetry names carry no prefix
        where = f"{loc} ({env})" if env else loc
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return lines
