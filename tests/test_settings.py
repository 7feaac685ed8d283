"""Settings are parsed and checked once, at start: a bad value stops the process, naming its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from channels import check_names
from dispatcher.errors import ConfigurationError
from settings import SettingsError, load_settings


def test_a_value_that_is_not_json_names_its_variable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DISPATCH_RATE_LIMITS", "sms=20/s")  # JSON was expected
    with pytest.raises(SettingsError, match="DISPATCH_RATE_LIMITS: not valid JSON"):
        load_settings(var_dir=tmp_path)


def test_an_out_of_range_value_names_its_variable(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="DISPATCH_API__PORT"):
        load_settings(var_dir=tmp_path, api={"port": 99999999})


@pytest.mark.parametrize(
    ("values", "variable", "hint"),
    [
        ({"rate_limits": {"smss": "1/s"}}, "DISPATCH_RATE_LIMITS", "did you mean 'sms'"),
        ({"rate_limits": {"microblg:bj": "30/h"}}, "DISPATCH_RATE_LIMITS", "did you mean 'microblog'"),
        ({"processing_windows": {"web": 120}}, "DISPATCH_PROCESSING_WINDOWS", "unknown channel 'web'"),
        (
            {"retry_budgets": {"displey": {"attempts": 3, "seconds": 60}}},
            "DISPATCH_RETRY_BUDGETS",
            "did you mean 'display'",
        ),
    ],
)
def test_a_channel_name_that_is_not_registered_stops_the_process(
    tmp_path: Path, values: dict[str, object], variable: str, hint: str
) -> None:
    settings = load_settings(var_dir=tmp_path, **values)
    with pytest.raises(ConfigurationError, match=f"{variable}: .*{hint}"):
        check_names(settings)
    check_names(load_settings(var_dir=tmp_path))  # the defaults name no channel that is not there


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"website": {"base_url": "https://www.example.gov.cn"}}, "DISPATCH_WEBSITE__APP_PASSWORD"),
        ({"sms": {"sendsms_url": "http://10.0.0.5:13013/cgi-bin/sendsms"}}, "DISPATCH_SMS__PASSWORD"),
        (
            {"microblog": {"api_base": "https://api.weibo.com", "rip": "202.106.0.20"}},
            "account 'sandbox' (DISPATCH_MICROBLOG__ACCOUNTS)",
        ),
    ],
)
def test_the_sandbox_credentials_are_refused_for_a_real_peer(
    tmp_path: Path, values: dict[str, object], named: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(named)):
        load_settings(var_dir=tmp_path, **values)
    load_settings(var_dir=tmp_path)  # on this machine, the sandbox's credentials are the sandbox's
