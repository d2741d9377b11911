"""Choosing the auth mode from configuration: explicit, inferred, or a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.app.auth import auth_from_settings
from monitor.codearts.auth import StaticTokenAuth
from monitor.codearts.auth.aksk import AkSkAuth
from monitor.codearts.auth.iam import IamPasswordAuth
from monitor.settings import ConfigError, load_settings

PASSWORD = "pw-Sx9!kQ2#zL7vB4"
SK = "SKsim0example0secret0key0value0000000001"
TOKEN = "tok-Zq8wX3vR5tY7uI9o"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("MONITOR_", "CLOUD_SDK_")):
            monkeypatch.delenv(name)


def test_token_alone_infers_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", TOKEN)
    settings = load_settings()
    assert settings.auth_mode == "token"
    assert isinstance(auth_from_settings(settings), StaticTokenAuth)


def test_password_alone_infers_password_with_region_as_project(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONITOR_IAM_USERNAME", "bot")
    monkeypatch.setenv("MONITOR_IAM_PASSWORD", PASSWORD)
    monkeypatch.setenv("MONITOR_IAM_DOMAIN", "acme")
    monkeypatch.setenv("MONITOR_REGION", "ap-southeast-3")
    settings = load_settings()
    assert settings.auth_mode == "password"
    assert settings.iam_endpoint_url == "https://iam.ap-southeast-3.myhuaweicloud.com"
    auth = auth_from_settings(settings)
    assert isinstance(auth, IamPasswordAuth)
    assert auth._project == {"name": "ap-southeast-3"}
    assert PASSWORD in auth.secrets()


def test_sdk_conventional_ak_sk_infer_aksk(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_SDK_AK", "AK-FROM-SDK-ENV")
    monkeypatch.setenv("CLOUD_SDK_SK", SK)
    monkeypatch.setenv("MONITOR_PROJECT_ID", "p1")
    settings = load_settings()
    assert settings.auth_mode == "aksk"
    assert settings.ak == "AK-FROM-SDK-ENV"
    assert isinstance(auth_from_settings(settings), AkSkAuth)


def test_monitor_ak_wins_over_cloud_sdk_ak(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUD_SDK_AK", "AK-FROM-SDK-ENV")
    monkeypatch.setenv("MONITOR_AK", "AK-FROM-MONITOR")
    monkeypatch.setenv("MONITOR_SK", SK)
    assert load_settings().ak == "AK-FROM-MONITOR"


def test_sk_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "sk").write_text(SK + "\n")
    monkeypatch.setenv("MONITOR_AK", "AK1")
    monkeypatch.setenv("MONITOR_SK_FILE", str(tmp_path / "sk"))
    auth = auth_from_settings(load_settings())
    assert auth.secrets() == [SK]


def test_two_modes_without_auth_mode_names_both(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("MONITOR_IAM_USERNAME", "bot")
    monkeypatch.setenv("MONITOR_IAM_PASSWORD", PASSWORD)
    monkeypatch.setenv("MONITOR_IAM_DOMAIN", "acme")
    with pytest.raises(ConfigError) as exc:
        load_settings()
    text = str(exc.value)
    assert "token (MONITOR_AUTH_TOKEN)" in text
    assert "password (MONITOR_IAM_USERNAME, MONITOR_IAM_PASSWORD)" in text
    assert "choose one with MONITOR_AUTH_MODE" in text
    assert TOKEN not in text
    assert PASSWORD not in text


def test_explicit_mode_ignores_the_other_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_AUTH_TOKEN", TOKEN)
    monkeypatch.setenv("CLOUD_SDK_AK", "AK1")
    monkeypatch.setenv("CLOUD_SDK_SK", SK)
    monkeypatch.setenv("MONITOR_AUTH_MODE", "aksk")
    assert isinstance(auth_from_settings(load_settings()), AkSkAuth)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"MONITOR_AUTH_MODE": "password", "MONITOR_IAM_USERNAME": "bot"},
            "set MONITOR_IAM_PASSWORD",
        ),
        (
            {"MONITOR_IAM_USERNAME": "bot", "MONITOR_IAM_PASSWORD": PASSWORD},
            "set MONITOR_IAM_DOMAIN",
        ),
        ({"MONITOR_AK": "AK1"}, "auth mode aksk: set MONITOR_SK or MONITOR_SK_FILE"),
        ({"CLOUD_SDK_SK": SK}, "auth mode aksk: set MONITOR_AK or MONITOR_AK_FILE"),
        ({"MONITOR_AUTH_MODE": "aksk"}, "set MONITOR_AK"),
        ({}, "no credentials"),
        (
            {"MONITOR_AK": "AK1", "MONITOR_SK": SK, "MONITOR_SK_FILE": "/nonexistent"},
            "set only one of MONITOR_SK and MONITOR_SK_FILE",
        ),
        ({"MONITOR_AUTH_MODE": "kerberos", "MONITOR_AUTH_TOKEN": TOKEN}, "auth_mode"),
    ],
)
def test_incomplete_configuration_says_what_is_missing(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, val in env.items():
        monkeypatch.setenv(name, val)
    with pytest.raises(ConfigError) as exc:
        load_settings()
    assert message in str(exc.value)
    assert SK not in str(exc.value)
    assert PASSWORD not in str(exc.value)


def test_toml_file_configures_aksk(tmp_path: Path) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(f'ak = "AK-TOML"\nsk = "{SK}"\nproject_id = "p1"\n')
    settings = load_settings(cfg)
    assert (settings.auth_mode, settings.ak, settings.project_id) == ("aksk", "AK-TOML", "p1")
