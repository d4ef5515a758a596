"""Settings read from the environment: refused in one sentence when wrong."""

from __future__ import annotations

import pytest

from include.config import (
    DEV_CUSTOMER_KEY_SECRET,
    ConfigError,
    Settings,
    late_days,
    late_sweep_days,
)


def settings(embedded: bool) -> Settings:
    return Settings("postgresql://u:p@h:5432/w", "postgresql://u:p@h:5432/s", "/l", "/h", embedded)


def test_the_public_default_secret_keys_only_the_local_embedded_warehouse(monkeypatch):
    monkeypatch.delenv("CRM_CUSTOMER_KEY_SECRET", raising=False)
    assert settings(embedded=True).customer_key_secret == DEV_CUSTOMER_KEY_SECRET
    with pytest.raises(ConfigError, match="CRM_CUSTOMER_KEY_SECRET must hold a secret of your own"):
        settings(embedded=False).customer_key_secret  # noqa: B018
    monkeypatch.setenv("CRM_CUSTOMER_KEY_SECRET", DEV_CUSTOMER_KEY_SECRET)  # set, but public
    with pytest.raises(ConfigError, match="the default is public"):
        settings(embedded=False).customer_key_secret  # noqa: B018
    monkeypatch.setenv("CRM_CUSTOMER_KEY_SECRET", "a-real-secret")
    assert settings(embedded=False).customer_key_secret == "a-real-secret"


@pytest.mark.parametrize(
    ("read", "variable"), [(late_days, "CRM_LATE_DAYS"), (late_sweep_days, "CRM_LATE_SWEEP_DAYS")]
)
def test_late_windows_are_whole_days(monkeypatch, read, variable):
    monkeypatch.setenv(variable, "3")
    assert read() == 3
    for bad in ("-1", "two", "1.5"):
        monkeypatch.setenv(variable, bad)
        with pytest.raises(ConfigError, match=f"{variable} must be a whole number of days"):
            read()
    monkeypatch.setenv(variable, "0")
    if read is late_sweep_days:
        with pytest.raises(ConfigError, match="at least 1"):
            read()
    else:
        assert read() == 0  # only the business day itself is listed each night
