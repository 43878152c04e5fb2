from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from controlplane.lib.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    parse_database_url,
)


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", True), ("TRUE", True), ("off", False), ("no", False)]
)
def test_it_parses_booleans(raw: str, expected: bool) -> None:
    assert env_bool("DEBUG", not expected, environ={"DEBUG": raw}) is expected


def test_it_uses_the_default_when_unset_or_blank() -> None:
    assert env_bool("DEBUG", True, environ={}) is True
    assert env_bool("DEBUG", False, environ={"DEBUG": "  "}) is False
    assert env_int("N", 7, environ={}) == 7


def test_it_refuses_an_ambiguous_boolean() -> None:
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False, environ={"DEBUG": "maybe"})


def test_it_refuses_bad_numbers() -> None:
    with pytest.raises(ImproperlyConfigured, match="not an integer"):
        env_int("Q_WORKERS", 2, environ={"Q_WORKERS": "two"})
    with pytest.raises(ImproperlyConfigured, match="below the minimum"):
        env_int("Q_WORKERS", 2, minimum=1, environ={"Q_WORKERS": "0"})
    with pytest.raises(ImproperlyConfigured, match="finite"):
        env_float("X", 1.0, environ={"X": "nan"})


def test_it_refuses_an_unknown_choice() -> None:
    with pytest.raises(ImproperlyConfigured, match="ENVIRONMENT='prod'"):
        env_choice(
            "ENVIRONMENT",
            "development",
            ("development", "production"),
            environ={"ENVIRONMENT": "prod"},
        )


def test_it_splits_lists() -> None:
    assert env_list("HOSTS", [], environ={"HOSTS": "a.example, b.example,,"}) == [
        "a.example",
        "b.example",
    ]


def test_it_parses_a_tcp_database_url() -> None:
    db = parse_database_url("postgres://app:s%40cret@db.internal:6543/control?sslmode=require")
    assert db == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "control",
        "USER": "app",
        "PASSWORD": "s@cret",
        "HOST": "db.internal",
        "PORT": "6543",
        "OPTIONS": {"sslmode": "require"},
    }


def test_it_parses_a_socket_database_url() -> None:
    db = parse_database_url("postgresql://postgres:@/controlplane?host=/srv/pg")
    assert (db["HOST"], db["PORT"], db["NAME"], db["USER"]) == (
        "/srv/pg",
        "",
        "controlplane",
        "postgres",
    )
    assert db["OPTIONS"] == {}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u@h/db", "scheme 'mysql' is not supported"),
        ("postgres://u@h/", "no database name"),
        ("postgres://u@h:notaport/db", "invalid port"),
    ],
)
def test_it_refuses_bad_database_urls(url: str, message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        parse_database_url(url)
