"""Every setting of the daemon in one typed model; nothing else reads the environment.

Sources, strongest first: keyword overrides (the CLI), `MONITOR_*` environment
variables, the TOML file named by `--config` or `MONITOR_CONFIG`, then defaults.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

RECORD_ID_RE = re.compile(r"^[0-9a-z-]{36}$")
DEFAULT_TERMINAL_STATUSES = (
    "SUCCESS",
    "FAILURE",
    "ABORTED",
    "SCHEDULE_FAILURE",
    "TIMEOUT",
    "UNKNOWN",
)
CONFIG_ENV = "MONITOR_CONFIG"

_toml_path: ContextVar[Path | None] = ContextVar("_toml_path", default=None)


def is_valid_record_id(value: str) -> bool:
    """A record id is 36 characters of digits, lowercase letters and hyphens."""
    return RECORD_ID_RE.fullmatch(value) is not None


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """The daemon's configuration. Field names are the env names without `MONITOR_`."""

    model_config = SettingsConfigDict(
        env_prefix="MONITOR_",
        extra="forbid",
        validate_default=True,
        case_sensitive=False,
    )

    # --- the API -----------------------------------------------------------------
    endpoint: str = "https://cloudbuild-ext.{region}.myhuaweicloud.com"
    region: str = "cn-north-4"
    request_timeout: float = Field(10.0, gt=0)

    # --- authentication ------------------------------------------------------------
    auth_mode: Literal["token"] | None = None
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None

    # --- what to watch ---------------------------------------------------------------
    records: Annotated[list[str], NoDecode] = Field(default_factory=list)
    watchlist_file: Path | None = None
    watchlist_reload_interval: float = Field(5.0, gt=0)

    # --- polling --------------------------------------------------------------------
    poll_interval: float = Field(15.0, gt=0)
    max_concurrency: int = Field(16, ge=1, le=1024)
    retention: float = Field(900.0, ge=0)
    max_watch: float = Field(86400.0, gt=0)
    terminal_statuses: Annotated[frozenset[str], NoDecode] = frozenset(DEFAULT_TERMINAL_STATUSES)
    not_found_confirmations: int = Field(3, ge=1)
    backoff_max: float = Field(300.0, gt=0)
    stall_timeout: float = Field(120.0, gt=0)

    # --- resilience -------------------------------------------------------------------
    # One budget for every request of the process; the real limit is not published.
    rate_limit: float = Field(5.0, gt=0)  # requests per second
    rate_burst: int = Field(10, ge=1)
    state_path: str = Field("./var/monitor.db", min_length=1)  # or ":memory:": keep nothing
    shutdown_grace: float = Field(10.0, ge=0)  # seconds in-flight polls get on SIGTERM

    # --- serving --------------------------------------------------------------------
    host: str = "0.0.0.0"
    port: int = Field(9630, ge=0, le=65535)
    log_format: Literal["json", "console"] | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _toml_path.get()
        if path is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
        return tuple(sources)

    @field_validator("records", mode="before")
    @classmethod
    def _records_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("records")
    @classmethod
    def _records_valid(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not is_valid_record_id(v)]
        if bad:
            raise ValueError(
                "not a record id (36 characters of [0-9a-z-]): " + ", ".join(repr(b) for b in bad)
            )
        return list(dict.fromkeys(value))

    @field_validator("terminal_statuses", mode="before")
    @classmethod
    def _terminal_csv(cls, value: Any) -> Any:
        value = _split_csv(value)
        if isinstance(value, list | tuple | set | frozenset):
            return frozenset(str(v).strip().upper() for v in value if str(v).strip())
        return value

    @field_validator("terminal_statuses")
    @classmethod
    def _terminal_nonempty(cls, value: frozenset[str]) -> frozenset[str]:
        if not value:
            raise ValueError("at least one terminal status is needed")
        return value

    @field_validator("endpoint")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_consistent(self) -> Settings:
        if self.auth_token is not None and self.auth_token_file is not None:
            raise ValueError("set only one of MONITOR_AUTH_TOKEN and MONITOR_AUTH_TOKEN_FILE")
        if self.auth_token is None and self.auth_token_file is None:
            raise ValueError("no credentials: set MONITOR_AUTH_TOKEN or MONITOR_AUTH_TOKEN_FILE")
        if self.auth_token_file is not None and not self.auth_token_file.is_file():
            raise ValueError(
                f"MONITOR_AUTH_TOKEN_FILE {self.auth_token_file} is not a readable file"
            )
        return self

    @property
    def endpoint_url(self) -> str:
        """The CodeArts Build base URL with `{region}` filled in."""
        return self.endpoint.replace("{region}", self.region)

    def secret_values(self) -> list[str]:
        """Every secret value this configuration knows, for log redaction."""
        out: list[str] = []
        if self.auth_token is not None:
            out.append(self.auth_token.get_secret_value())
        return [s for s in out if s]

    def masked(self) -> dict[str, Any]:
        """The effective settings as plain data, secrets masked."""
        data: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "********" if value.get_secret_value() else ""
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, frozenset):
                value = sorted(value)
            data[name] = value
        data["endpoint_url"] = self.endpoint_url
        return data


class ConfigError(Exception):
    """The configuration cannot be used; `errors` lists every problem, without values."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@contextmanager
def _toml_file(path: Path | None) -> Iterator[None]:
    token = _toml_path.set(path)
    try:
        yield
    finally:
        _toml_path.reset(token)


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


def format_validation_errors(exc: ValidationError) -> list[str]:
    """One line per error, naming the setting; input values are left out (they may be secret)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "settings"
        env = f"MONITOR_{loc.upper()}" if err["loc"] else ""
        where = f"{loc} ({env})" if env else loc
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return lines
