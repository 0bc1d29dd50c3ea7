"""Settings: the seed's variable names, refusals naming the variable, secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest

from qstash_operator.domain.errors import SettingsError
from qstash_operator.domain.model import BackendChoice
from qstash_operator.settings import DEFAULT_QSTASH_URL, Settings

PRODUCTION = {
    "QSTASH_TOKEN": "token-value-123",
    "QSTASH_CURRENT_SIGNING_KEY": "sig_current_value_0000000000000",
    "QSTASH_NEXT_SIGNING_KEY": "sig_next_value_00000000000000000",
    "WEBHOOK_PUBLIC_URL": "https://cron.example.com/",
}


def test_an_empty_environment_is_development_mode() -> None:
    settings = Settings.from_env({})
    assert settings.qstash.url == DEFAULT_QSTASH_URL
    assert settings.qstash_problem() == "QSTASH_TOKEN is not set"
    assert settings.cluster_name == "default"
    assert settings.backend is BackendChoice.AUTO


@pytest.mark.parametrize(
    ("raw", "limit"),
    [
        pytest.param(None, 100, id="unset: the default"),
        pytest.param("1", 1, id="one at a time"),
        pytest.param("500", 500, id="a big cluster's choice"),
        pytest.param("250.0", 250, id="a whole number written as a float"),
    ],
)
def test_the_worker_limit(raw: str | None, limit: int) -> None:
    env = {} if raw is None else {"QSTASH_OPERATOR_WORKER_LIMIT": raw}
    assert Settings.from_env(env).worker_limit == limit


def test_the_mirror_settings_default_and_parse() -> None:
    defaults = Settings.from_env({})
    assert (
        defaults.mirror_delay_seconds,
        defaults.mirror_record_grace_seconds,
        defaults.mirror_cache_max_cronworkflows,
    ) == (2.0, 60.0, 50_000)
    chosen = Settings.from_env(
        {
            "QSTASH_OPERATOR_MIRROR_DELAY": "0.5",
            "QSTASH_OPERATOR_MIRROR_RECORD_GRACE": "30",
            "QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS": "20000",
        }
    )
    assert (
        chosen.mirror_delay_seconds,
        chosen.mirror_record_grace_seconds,
        chosen.mirror_cache_max_cronworkflows,
    ) == (0.5, 30.0, 20_000)


@pytest.mark.parametrize(
    ("raw", "enabled"),
    [
        pytest.param(None, True, id="unset: the console is on"),
        pytest.param("false", False, id="turned off"),
        pytest.param("TRUE", True, id="any case"),
    ],
)
def test_the_console_flag_defaults_to_on(raw: str | None, enabled: bool) -> None:
    env = {} if raw is None else {"QSTASH_WEBHOOK_UI": raw}
    assert Settings.from_env(env).ui_enabled is enabled


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [
        pytest.param(None, 300.0, id="unset: five minutes"),
        pytest.param("0", 0.0, id="give up at the first failure"),
        pytest.param("3600", 3600.0, id="patient"),
    ],
)
def test_how_long_a_deletion_waits_for_qstash(raw: str | None, seconds: float) -> None:
    env = {} if raw is None else {"QSTASH_OPERATOR_FINALIZER_TIMEOUT": raw}
    assert Settings.from_env(env).finalizer_timeout_seconds == seconds


def test_production_settings_can_use_qstash() -> None:
    settings = Settings.from_env(PRODUCTION)
    assert settings.qstash_problem() is None
    assert settings.public_url == "https://cron.example.com"
    settings.require_webhook()


def test_the_seed_name_of_the_public_url_is_read_too() -> None:
    env = {**PRODUCTION, "WEBHOOK_PUBLIC_URL": "", "NEXT_PUBLIC_APP_URL": "https://app.example.com"}
    assert Settings.from_env(env).public_url == "https://app.example.com"


def test_secrets_never_print() -> None:
    settings = Settings.from_env(PRODUCTION)
    text = repr(settings) + str(settings)
    for name in ("QSTASH_TOKEN", "QSTASH_CURRENT_SIGNING_KEY", "QSTASH_NEXT_SIGNING_KEY"):
        assert PRODUCTION[name] not in text
    assert settings.qstash.token is not None
    assert settings.qstash.token.reveal() == PRODUCTION["QSTASH_TOKEN"]


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param(
            {"QSTASH_URL": "qstash.upstash.io"}, "QSTASH_URL", id="api url without scheme"
        ),
        pytest.param(
            {"QSTASH_CURRENT_SIGNING_KEY": "sig_a"}, "QSTASH_NEXT_SIGNING_KEY", id="one key only"
        ),
        pytest.param(
            {"WEBHOOK_PUBLIC_URL": "cron.example.com"},
            "WEBHOOK_PUBLIC_URL",
            id="public url without scheme",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_CLUSTER_NAME": "eu.prod"},
            "QSTASH_OPERATOR_CLUSTER_NAME",
            id="cluster name with a dot",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_BACKEND": "Lambda"}, "QSTASH_OPERATOR_BACKEND", id="unknown backend"
        ),
        pytest.param(
            {"QSTASH_OPERATOR_BACKEND": "QStash"},
            "QSTASH_OPERATOR_BACKEND",
            id="QStash forced without a token",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_RESYNC_SECONDS": "soon"},
            "QSTASH_OPERATOR_RESYNC_SECONDS",
            id="resync not a number",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_RESYNC_SECONDS": "0"},
            "QSTASH_OPERATOR_RESYNC_SECONDS",
            id="resync zero",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_WORKER_LIMIT": "0"},
            "QSTASH_OPERATOR_WORKER_LIMIT",
            id="no workers",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_WORKER_LIMIT": "2.5"},
            "QSTASH_OPERATOR_WORKER_LIMIT",
            id="half a worker",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_FINALIZER_TIMEOUT": "-1"},
            "QSTASH_OPERATOR_FINALIZER_TIMEOUT",
            id="a deletion bound in the past",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "maybe"},
            "QSTASH_OPERATOR_ALLOW_PRIVATE_URL",
            id="flag not a boolean",
        ),
        pytest.param({"QSTASH_WEBHOOK_UI": "off"}, "QSTASH_WEBHOOK_UI", id="console flag"),
        pytest.param(
            {"QSTASH_OPERATOR_MIRROR_DELAY": "-1"},
            "QSTASH_OPERATOR_MIRROR_DELAY",
            id="a mirror delay in the past",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_MIRROR_RECORD_GRACE": "soon"},
            "QSTASH_OPERATOR_MIRROR_RECORD_GRACE",
            id="a record grace not a number",
        ),
        pytest.param(
            {"QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS": "0"},
            "QSTASH_OPERATOR_MIRROR_CACHE_MAX_CRONWORKFLOWS",
            id="a mirror cache of nothing",
        ),
    ],
)
def test_bad_settings_name_the_variable_and_the_fix(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env)
    assert caught.value.variable == variable
    assert "Fix:" in str(caught.value)


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        pytest.param(
            {"WEBHOOK_PUBLIC_URL": "https://a.example"},
            "QSTASH_CURRENT_SIGNING_KEY and QSTASH_NEXT_SIGNING_KEY",
            id="no keys",
        ),
        pytest.param(
            {"QSTASH_CURRENT_SIGNING_KEY": "a", "QSTASH_NEXT_SIGNING_KEY": "b"},
            "WEBHOOK_PUBLIC_URL",
            id="no public url",
        ),
        pytest.param(
            {**PRODUCTION, "QSTASH_TOKEN": ""},
            "QSTASH_TOKEN",
            id="no token: a retry's tick cannot be looked up",
        ),
    ],
)
def test_the_webhook_refuses_to_start_without_what_it_verifies_with(
    env: dict[str, str], missing: str
) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(env).require_webhook()
    assert caught.value.variable == missing


def test_a_keys_folder_is_enough_for_the_webhook(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "QSTASH_SIGNING_KEYS_DIR": str(tmp_path),
            "WEBHOOK_PUBLIC_URL": "https://a.example",
            "QSTASH_TOKEN": "t",
        }
    )
    settings.require_webhook()


def test_private_urls_make_development_mode_unless_allowed() -> None:
    env = {**PRODUCTION, "WEBHOOK_PUBLIC_URL": "http://127.0.0.1:8000"}
    problem = Settings.from_env(env).qstash_problem()
    assert problem is not None
    assert "not https" in problem
    assert (
        Settings.from_env({**env, "QSTASH_OPERATOR_ALLOW_PRIVATE_URL": "true"}).qstash_problem()
        is None
    )


@pytest.mark.parametrize(
    ("raw", "audience"),
    [
        pytest.param(None, "qstash-operator", id="unset: the default"),
        pytest.param("cron-api", "cron-api", id="a name"),
        pytest.param("https://cron.example.com", "https://cron.example.com", id="a URL"),
    ],
)
def test_the_api_audience(raw: str | None, audience: str) -> None:
    env = {} if raw is None else {"QSTASH_OPERATOR_API_AUDIENCE": raw}
    assert Settings.from_env(env).api_audience == audience


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        pytest.param("two words", "is not an audience", id="a space"),
        pytest.param("a,b", "is not an audience", id="a list"),
        pytest.param("x" * 254, "is not an audience", id="too long"),
        pytest.param(
            "https://kubernetes.default.svc.cluster.local",
            "the API server's own audience",
            id="the API server's own: every cluster token would pass",
        ),
    ],
)
def test_an_unusable_api_audience_stops_the_process(raw: str, problem: str) -> None:
    with pytest.raises(SettingsError) as refused:
        Settings.from_env({"QSTASH_OPERATOR_API_AUDIENCE": raw})
    assert refused.value.variable == "QSTASH_OPERATOR_API_AUDIENCE"
    assert problem in refused.value.problem


@pytest.mark.parametrize(
    ("env", "delays"),
    [
        pytest.param({}, (1.0, 15.0), id="defaults"),
        pytest.param(
            {"QSTASH_WEBHOOK_STATUS_DELAY": "0.25", "QSTASH_WEBHOOK_STATUS_MAX_DELAY": "2"},
            (0.25, 2.0),
            id="chosen",
        ),
        pytest.param(
            {"QSTASH_WEBHOOK_STATUS_DELAY": "3", "QSTASH_WEBHOOK_STATUS_MAX_DELAY": "3"},
            (3.0, 3.0),
            id="a cap equal to the delay",
        ),
    ],
)
def test_the_webhooks_status_delays(env: dict[str, str], delays: tuple[float, float]) -> None:
    settings = Settings.from_env(env)
    assert (settings.status_delay_seconds, settings.status_max_delay_seconds) == delays


def test_a_status_cap_below_the_delay_stops_the_process_naming_both() -> None:
    with pytest.raises(SettingsError) as raised:
        Settings.from_env(
            {"QSTASH_WEBHOOK_STATUS_DELAY": "2", "QSTASH_WEBHOOK_STATUS_MAX_DELAY": "1"}
        )
    assert raised.value.variable == "QSTASH_WEBHOOK_STATUS_MAX_DELAY"
    assert "QSTASH_WEBHOOK_STATUS_DELAY" in str(raised.value)
