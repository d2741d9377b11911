"""Credentials from the settings: the auth scheme they choose, and the admin token."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import SecretStr

from monitor.codearts.auth import AkSkAuth, Auth, IamPasswordAuth, StaticTokenAuth
from monitor.files import FileSecret
from monitor.settings import Settings


def auth_from_settings(
    settings: Settings, register_secret: Callable[[Iterable[str]], None] | None = None
) -> Auth:
    """The auth scheme the settings choose; `register_secret` hears every secret read later."""

    def secret(value: SecretStr | str | None, path: Path | None) -> Callable[[], str]:
        if path is not None:
            return FileSecret(path, register_secret)
        assert value is not None
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        return lambda: text

    s = settings
    if s.auth_mode == "password":
        assert s.iam_username is not None
        assert s.iam_domain is not None
        return IamPasswordAuth(
            iam_url=s.iam_endpoint_url,
            username=s.iam_username,
            password=secret(s.iam_password, s.iam_password_file),
            domain=s.iam_domain,
            project_name=None if s.iam_project_id else (s.iam_project or s.region),
            project_id=s.iam_project_id,
            on_token=register_secret,
        )
    if s.auth_mode == "aksk":
        return AkSkAuth(
            ak=secret(s.ak, s.ak_file),
            sk=secret(s.sk, s.sk_file),
            project_id=s.project_id,
        )
    if s.auth_token_file is not None:
        return StaticTokenAuth(FileSecret(s.auth_token_file, register_secret))
    if s.auth_token is not None:
        return StaticTokenAuth.from_value(s.auth_token.get_secret_value())
    raise ValueError("no credentials configured")


def admin_token(
    settings: Settings, register_secret: Callable[[Iterable[str]], None]
) -> str | Callable[[], str] | None:
    """The admin token: a value, a file re-read when it changes, or none (changes refused)."""
    if settings.admin_token_file is not None:
        return FileSecret(settings.admin_token_file, register_secret)
    return settings.admin_token.get_secret_value() if settings.admin_token else None
