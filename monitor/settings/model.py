"""The Settings model: every setting of the daemon, typed, with its own rules."""

from __future__ import annotations

import re
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from monitor.cluster.url import mask_redis_url, redis_settings_problem, redis_url_secrets
from monitor.domain.ids import JOB_ID_RE, PROJECT_ID_RE, is_valid_record_id
from monitor.settings.rules import admin_token_problem, auth_mode_problems
from monitor.traces.config import otlp_url, parse_headers

DEFAULT_TERMINAL_STATUSES = (
    "SUCCESS",
    "FAILURE",
    "ABORTED",
    "SCHEDULE_FAILURE",
    "TIMEOUT",
    "UNKNOWN",
)
CONFIG_ENV = "MONITOR_CONFIG"
AuthMode = Literal["token", "password", "aksk"]


def _headers_valid(value: SecretStr | None) -> SecretStr | None:
    if value is not None:
        parse_headers(value.get_secret_value())
    return value


OtlpUrl = Annotated[str | None, AfterValidator(otlp_url)]
OtlpHeaders = Annotated[SecretStr | None, AfterValidator(_headers_valid)]


toml_path: ContextVar[Path | None] = ContextVar("_toml_path", default=None)


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
        # MONITOR_AK/SK also answer to the SDK's CLOUD_SDK_AK/SK; keyword and TOML use `ak`.
        populate_by_name=True,
    )

    # --- the API -----------------------------------------------------------------
    endpoint: str = "https://cloudbuild-ext.{region}.myhuaweicloud.com"
    region: str = "cn-north-4"
    request_timeout: float = Field(10.0, gt=0)

    # --- authentication (one mode; see _auth_consistent and docs/authentication.md) ---
    auth_mode: AuthMode | None = None
    auth_token: SecretStr | None = None
    auth_token_file: Path | None = None
    iam_username: str | None = None
    iam_password: SecretStr | None = None
    iam_password_file: Path | None = None
    iam_domain: str | None = None
    iam_project: str | None = None  # project name; the region when unset
    iam_project_id: str | None = None
    iam_endpoint: str = "https://iam.{region}.myhuaweicloud.com"
    ak: str | None = Field(None, validation_alias=AliasChoices("monitor_ak", "cloud_sdk_ak"))
    ak_file: Path | None = None
    sk: SecretStr | None = Field(None, validation_alias=AliasChoices("monitor_sk", "cloud_sdk_sk"))
    sk_file: Path | None = None
    project_id: str | None = None  # sent as X-Project-Id with AK/SK signing

    # --- what to watch ---------------------------------------------------------------
    records: Annotated[list[str], NoDecode] = Field(default_factory=list)
    watchlist_file: Path | None = None
    watchlist_reload_interval: float = Field(5.0, gt=0)
    jobs: Annotated[list[str], NoDecode] = Field(default_factory=list)
    discovery_interval: float = Field(60.0, gt=0)

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

    # --- admin API --------------------------------------------------------------------
    admin_token: SecretStr | None = None
    admin_token_file: Path | None = None  # a mounted Secret; re-read when it changes
    admin_read_protected: bool = False

    # --- status page (GET / and /records/{id}) -------------------------------------------
    status_page_rows: int = Field(200, ge=1, le=5000)  # builds shown at /, newest first
    status_page_refresh: float = Field(5.0, ge=0)  # seconds between reloads; 0: none

    # --- traces: OTLP/HTTP export of completed builds (off unless an endpoint is set) ---
    otlp_endpoint: OtlpUrl = None  # the collector's base URL; traces go to /v1/traces
    # The standard OpenTelemetry variables, under their own names.
    otel_exporter_otlp_traces_endpoint: OtlpUrl = Field(
        None, validation_alias=AliasChoices("otel_exporter_otlp_traces_endpoint")
    )
    otel_exporter_otlp_endpoint: OtlpUrl = Field(
        None, validation_alias=AliasChoices("otel_exporter_otlp_endpoint")
    )
    otel_exporter_otlp_headers: OtlpHeaders = Field(
        None, validation_alias=AliasChoices("otel_exporter_otlp_headers")
    )
    otel_service_name: str = Field(
        "codearts-build", min_length=1, validation_alias=AliasChoices("otel_service_name")
    )
    otlp_queue_size: int = Field(10_000, ge=1)  # spans waiting for delivery, at most
    otlp_retry_for: float = Field(3600.0, gt=0)  # seconds a build's trace is retried
    otlp_backoff_max: float = Field(30.0, gt=0)  # longest wait between two attempts
    otlp_timeout: float = Field(10.0, gt=0)  # seconds one export request may take
    # --- more than one replica (Redis) ------------------------------------------------
    # When set, Redis is the state store and the coordinator of every replica that shares
    # it and the cluster name; MONITOR_STATE_PATH is then not used.
    redis_url: SecretStr | None = None  # redis://[user:password@]host:port/db or rediss://
    redis_password_file: Path | None = None  # a mounted Secret; re-read when it changes
    cluster_name: str = Field("codearts-stage-monitor", pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    lease_ttl: float = Field(15.0, ge=0.5)  # seconds a replica's heartbeat and leases live

    # --- whole projects: discovery of every job, history per job -----------------------
    projects: Annotated[list[str], NoDecode] = Field(default_factory=list)
    job_include: str = ".*"  # anchored at both ends, as Prometheus relabelling regexes
    job_exclude: str | None = None
    job_refresh_interval: float = Field(300.0, gt=0)
    max_jobs: int = Field(500, ge=1)  # distinct job_name values in the aggregates

    @field_validator("projects", mode="before")
    @classmethod
    def _projects_csv(cls, value: Any) -> Any:
        bad = [v for v in _split_csv(value) if PROJECT_ID_RE.fullmatch(str(v)) is None]
        if bad:
            raise ValueError("not a CodeArts project id (32 characters of [0-9a-z]): " + repr(bad))
        return list(dict.fromkeys(_split_csv(value)))

    @field_validator("job_include", "job_exclude")
    @classmethod
    def _job_pattern(cls, value: str | None) -> str | None:
        try:
            return None if value is None else re.compile(value).pattern
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None

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
        path = toml_path.get()
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

    @field_validator("jobs", mode="before")
    @classmethod
    def _jobs_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("jobs")
    @classmethod
    def _jobs_valid(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if JOB_ID_RE.fullmatch(v) is None]
        if bad:
            raise ValueError(
                "not a job id (32 characters of [0-9a-z]): " + ", ".join(repr(b) for b in bad)
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

    @field_validator("endpoint", "iam_endpoint")
    @classmethod
    def _endpoint_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _auth_consistent(self) -> Settings:
        mode, problems = auth_mode_problems(self)
        if problems:
            raise ValueError(f"auth mode {mode}: " + "; ".join(problems))
        self.auth_mode = mode
        return self

    @model_validator(mode="after")
    def _admin_consistent(self) -> Settings:
        problem = admin_token_problem(self)
        if problem:
            raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _redis_consistent(self) -> Settings:
        url = self.redis_url.get_secret_value() if self.redis_url is not None else None
        problem = redis_settings_problem(url, self.redis_password_file)
        if problem:
            raise ValueError(problem)
        return self

    @property
    def iam_endpoint_url(self) -> str:
        """The IAM base URL with `{region}` filled in."""
        return self.iam_endpoint.replace("{region}", self.region)

    @property
    def endpoint_url(self) -> str:
        """The CodeArts Build base URL with `{region}` filled in."""
        return self.endpoint.replace("{region}", self.region)

    def secret_values(self) -> list[str]:
        """Every secret value this configuration knows, for log redaction."""
        out: list[str] = []
        for secret in (self.auth_token, self.iam_password, self.sk, self.admin_token):
            if secret is not None:
                out.append(secret.get_secret_value())
        if self.otel_exporter_otlp_headers is not None:
            out.append(self.otel_exporter_otlp_headers.get_secret_value())
            for header in parse_headers(
                self.otel_exporter_otlp_headers.get_secret_value()
            ).values():
                out.extend([header, *header.split()[1:]])  # "Bearer X": X alone is secret too
        if self.redis_url is not None:
            out += redis_url_secrets(self.redis_url)
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
        if self.redis_url is not None:  # where Redis is helps; its password never shows
            data["redis_url"] = mask_redis_url(self.redis_url.get_secret_value())
        data["endpoint_url"] = self.endpoint_url
        data["iam_endpoint_url"] = self.iam_endpoint_url
        return data

    # --- history: retired records' tombstones -------------------------------------------
    # Seconds after a record finished that its tombstone is kept (so the id is not
    # watched again), counted from finished_at; then the id is forgotten.
    forget_after: float = Field(604800.0, gt=0)

    @model_validator(mode="after")
    def _forget_after_covers_retention(self) -> Settings:
        if self.forget_after < self.retention:
            raise ValueError(
                f"MONITOR_FORGET_AFTER ({self.forget_after:g} s) must be at least "
                f"MONITOR_RETENTION ({self.retention:g} s): a record is retired after "
                "retention and its tombstone forgotten later"
            )
        return self
