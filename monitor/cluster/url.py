"""MONITOR_REDIS_URL checked and shown without its password (for the settings and logs)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import SecretStr

__all__ = ["mask_redis_url", "redis_settings_problem", "redis_url_problem", "redis_url_secrets"]


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a Redis URL, without repeating it (it may hold a password)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return "must start with redis:// or rediss://"
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return "has a port that is not a number"
    if not parts.hostname:
        return "names no host"
    db = parts.path.lstrip("/")
    if db and not db.isdigit():
        return "has a database that is not a number (redis://host:port/0)"
    return None


def redis_url_secrets(url: SecretStr) -> list[str]:
    """The password in a Redis URL, as written and percent-decoded, for log redaction."""
    password = urlsplit(url.get_secret_value()).password
    return [p for p in {password, unquote(password or "")} if p]


def mask_redis_url(url: str) -> str:
    """The URL with its password replaced by asterisks."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:********@{host}"))


def redis_settings_problem(url: str | None, password_file: Path | None) -> str | None:
    """What is wrong with MONITOR_REDIS_URL and MONITOR_REDIS_PASSWORD_FILE together."""
    if url is None:
        return "MONITOR_REDIS_PASSWORD_FILE needs MONITOR_REDIS_URL" if password_file else None
    problem = redis_url_problem(url)
    if problem:
        return f"MONITOR_REDIS_URL {problem}"
    if password_file is not None and urlsplit(url).password:
        return (
            "set the Redis password in only one of MONITOR_REDIS_URL and "
            "MONITOR_REDIS_PASSWORD_FILE"
        )
    if password_file is not None and not password_file.is_file():
        return f"MONITOR_REDIS_PASSWORD_FILE {password_file} is not a readable file"
    return None
