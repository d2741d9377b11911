"""The rules that tie several settings together: which auth mode, and what each needs."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from monitor.settings.model import AuthMode, Settings


def auth_mode_problems(s: Settings) -> tuple[AuthMode, list[str]]:
    """The auth mode in force (chosen or inferred) and what its settings lack."""
    mode = s.auth_mode or inferred_auth_mode(s)
    problems = {"token": token_problems, "password": password_problems, "aksk": aksk_problems}
    return mode, problems[mode](s)


def inferred_auth_mode(s: Settings) -> AuthMode:
    configured = configured_auth_modes(s)
    if len(configured) > 1:
        raise ValueError(
            "credentials for more than one auth mode are set: "
            + " and ".join(f"{m} ({', '.join(configured[m])})" for m in configured)
            + "; choose one with MONITOR_AUTH_MODE"
        )
    if not configured:
        raise ValueError(
            "no credentials: set MONITOR_AUTH_TOKEN(_FILE), or MONITOR_IAM_USERNAME "
            "and MONITOR_IAM_PASSWORD(_FILE), or MONITOR_AK and MONITOR_SK(_FILE)"
        )
    return next(iter(configured))


def configured_auth_modes(s: Settings) -> dict[AuthMode, list[str]]:
    """Each auth mode some of whose settings are given, with the settings' env names."""
    given: dict[AuthMode, dict[str, object]] = {
        "token": {
            "MONITOR_AUTH_TOKEN": s.auth_token,
            "MONITOR_AUTH_TOKEN_FILE": s.auth_token_file,
        },
        "password": {
            "MONITOR_IAM_USERNAME": s.iam_username,
            "MONITOR_IAM_PASSWORD": s.iam_password,
            "MONITOR_IAM_PASSWORD_FILE": s.iam_password_file,
        },
        "aksk": {
            "MONITOR_AK/CLOUD_SDK_AK": s.ak,
            "MONITOR_AK_FILE": s.ak_file,
            "MONITOR_SK/CLOUD_SDK_SK": s.sk,
            "MONITOR_SK_FILE": s.sk_file,
        },
    }
    out: dict[AuthMode, list[str]] = {}
    for mode, names in given.items():
        present = [name for name, value in names.items() if value is not None]
        if present:
            out[mode] = present
    return out


def one_of(value: object, path: Path | None, name: str) -> list[str]:
    if value is not None and path is not None:
        return [f"set only one of {name} and {name}_FILE"]
    if value is None and path is None:
        return [f"set {name} or {name}_FILE"]
    if path is not None and not path.is_file():
        return [f"{name}_FILE {path} is not a readable file"]
    return []


def token_problems(s: Settings) -> list[str]:
    return one_of(s.auth_token, s.auth_token_file, "MONITOR_AUTH_TOKEN")


def password_problems(s: Settings) -> list[str]:
    out = []
    if not s.iam_username:
        out.append("set MONITOR_IAM_USERNAME")
    out += one_of(s.iam_password, s.iam_password_file, "MONITOR_IAM_PASSWORD")
    if not s.iam_domain:
        out.append("set MONITOR_IAM_DOMAIN (the account name)")
    if s.iam_project and s.iam_project_id:
        out.append("set only one of MONITOR_IAM_PROJECT and MONITOR_IAM_PROJECT_ID")
    return out


def aksk_problems(s: Settings) -> list[str]:
    return one_of(s.ak, s.ak_file, "MONITOR_AK") + one_of(s.sk, s.sk_file, "MONITOR_SK")


def admin_token_problem(s: Settings) -> str | None:
    """Why the admin token settings cannot be used, or None."""
    if s.admin_token is not None and s.admin_token_file is not None:
        return "set only one of MONITOR_ADMIN_TOKEN and MONITOR_ADMIN_TOKEN_FILE"
    token = s.admin_token.get_secret_value() if s.admin_token is not None else None
    if s.admin_token_file is not None:
        try:
            token = s.admin_token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return f"MONITOR_ADMIN_TOKEN_FILE {s.admin_token_file} is not a readable file"
    if token is not None and len(token) < 16:
        where = (
            "MONITOR_ADMIN_TOKEN"
            if s.admin_token_file is None
            else f"the token in MONITOR_ADMIN_TOKEN_FILE {s.admin_token_file}"
        )
        return f"{where} must be at least 16 characters"
    if s.admin_read_protected and token is None:
        return "MONITOR_ADMIN_READ_PROTECTED=true needs MONITOR_ADMIN_TOKEN(_FILE)"
    return None
