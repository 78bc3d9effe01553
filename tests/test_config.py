"""Tests for botkit.config: Settings.from_env reads an injected environment, checks it all at once."""

from __future__ import annotations

import dataclasses

import pytest

from botkit.config import (
    DAY,
    DEFAULT_BASE_URL,
    DEFAULT_DATABASE,
    DEFAULT_RATE_PER_KEY,
    DEFAULT_RATE_PER_NUMBER,
    DEFAULT_RETENTION_DAYS,
    DEV_PHONE_NUMBER_ID,
    DEV_WEBHOOK_SECRET,
    MAX_BODY_BYTES,
    MIN_RETENTION,
    REDELIVERY_HORIZON,
    LogSettings,
    Settings,
    database_for,
)
from botkit.exceptions import BotkitError, ConfigError
from botkit.fake.rules import DEFAULT_PHONE_NUMBER_ID

KEY = "gsk_test_0123456789abcdef"
SECRET = "whsec_0123456789"


def problems_of(env: dict[str, str], *, require_provider: bool = False) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env, require_provider=require_provider)
    return caught.value.problems


def test_an_empty_environment_runs_against_the_fake_provider() -> None:
    settings = Settings.from_env({})
    assert settings.uses_fake_provider
    assert settings.api_key is None
    assert settings.base_url == DEFAULT_BASE_URL == "https://cloud.gosendapi.com/v1"
    assert settings.database == DEFAULT_DATABASE == "botkit.db"
    assert settings.webhook_secrets == (DEV_WEBHOOK_SECRET,)
    assert settings.phone_number_id is None
    assert settings.sending_number == DEV_PHONE_NUMBER_ID == DEFAULT_PHONE_NUMBER_ID
    assert settings.api_token is None
    assert settings.max_body_bytes == MAX_BODY_BYTES == 1024 * 1024
    assert settings.send_concurrency == 16
    assert settings.database_pool == 10


def test_a_real_key_has_no_default_business_number() -> None:
    settings = Settings.from_env({"GOSENDAPI_API_KEY": KEY, "GOSENDAPI_WEBHOOK_SECRET": SECRET})
    assert settings.sending_number is None
    fake = Settings.from_env({"GOSENDAPI_PHONE_NUMBER_ID": "15550001111"})
    assert fake.sending_number == "15550001111"  # the fake with a number of your choice


def test_a_webhook_secret_without_the_whsec_prefix_is_taken_with_a_warning() -> None:
    assert Settings.from_env({"GOSENDAPI_WEBHOOK_SECRET": SECRET}).warnings() == ()
    [warning] = Settings.from_env({"GOSENDAPI_WEBHOOK_SECRET": "gsk_test_oops"}).warnings()
    assert warning.startswith("GOSENDAPI_WEBHOOK_SECRET does not start with whsec_")
    assert "gsk_test_oops" not in warning  # never a secret's value
    [rotating] = Settings.from_env({"GOSENDAPI_WEBHOOK_SECRET": "whsec_1,abc"}).warnings()
    assert rotating.startswith("GOSENDAPI_WEBHOOK_SECRET (number 2) does not")


def test_a_full_environment_is_read() -> None:
    env = {
        "GOSENDAPI_API_KEY": KEY,
        "GOSENDAPI_WEBHOOK_SECRET": SECRET,
        "GOSENDAPI_PHONE_NUMBER_ID": "555123456789",
        "GOSENDAPI_BASE_URL": "http://localhost:8001/v1/",
        "BOTKIT_DATABASE": "sqlite:////var/lib/botkit/bot.db",
        "BOTKIT_API_TOKEN": "tok_1",
        "BOTKIT_SEND_CONCURRENCY": "4",
        "BOTKIT_DATABASE_POOL": "3",
    }
    settings = Settings.from_env(env, require_provider=True)
    assert not settings.uses_fake_provider
    assert settings.api_key == KEY
    assert settings.webhook_secrets == (SECRET,)
    assert settings.phone_number_id == "555123456789"
    assert settings.base_url == "http://localhost:8001/v1"  # no trailing slash to double up
    assert settings.database == "sqlite:////var/lib/botkit/bot.db"
    assert settings.api_token == "tok_1"
    assert settings.send_concurrency == 4
    assert settings.database_pool == 3


def test_a_live_key_is_accepted() -> None:
    settings = Settings.from_env(
        {"GOSENDAPI_API_KEY": "gsk_live_abc", "GOSENDAPI_WEBHOOK_SECRET": SECRET}
    )
    assert settings.api_key == "gsk_live_abc"


def test_blank_values_count_as_unset() -> None:
    env = {
        "GOSENDAPI_API_KEY": "   ",
        "GOSENDAPI_WEBHOOK_SECRET": " , ",
        "GOSENDAPI_BASE_URL": " ",
        "BOTKIT_DATABASE": "",
        "BOTKIT_SEND_CONCURRENCY": " ",
    }
    settings = Settings.from_env(env)
    assert settings.uses_fake_provider
    assert settings.webhook_secrets == (DEV_WEBHOOK_SECRET,)
    assert settings.base_url == DEFAULT_BASE_URL
    assert settings.database == DEFAULT_DATABASE
    assert settings.send_concurrency == 16


def test_every_problem_is_listed_at_once() -> None:
    env = {
        "GOSENDAPI_API_KEY": "sk_live_wrong_prefix",
        "GOSENDAPI_PHONE_NUMBER_ID": "+1 555 000 1111",
        "GOSENDAPI_BASE_URL": "cloud.gosendapi.com/v1",
        "BOTKIT_SEND_CONCURRENCY": "lots",
    }
    problems = problems_of(env)
    assert len(problems) == 5, problems
    key, secret, phone, url, concurrency = problems
    assert "GOSENDAPI_API_KEY" in key and "gsk_test_" in key and "gsk_live_" in key
    assert "GOSENDAPI_WEBHOOK_SECRET" in secret and "is not set" in secret
    assert "GOSENDAPI_PHONE_NUMBER_ID" in phone and "'+1 555 000 1111'" in phone
    assert "GOSENDAPI_BASE_URL" in url and "'cloud.gosendapi.com/v1'" in url
    assert "BOTKIT_SEND_CONCURRENCY" in concurrency and "'lots'" in concurrency


def test_the_error_message_shows_every_problem() -> None:
    env = {"GOSENDAPI_API_KEY": "nope", "BOTKIT_SEND_CONCURRENCY": "0"}
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(env)
    message = str(caught.value)
    assert isinstance(caught.value, BotkitError)
    for problem in caught.value.problems:
        assert problem in message
    assert message.startswith("invalid configuration:")


def test_a_key_without_a_secret_is_an_error_even_without_require_provider() -> None:
    problems = problems_of({"GOSENDAPI_API_KEY": KEY})
    assert len(problems) == 1
    assert "GOSENDAPI_WEBHOOK_SECRET" in problems[0]
    assert "comma-separated" in problems[0]  # says how to rotate


def test_require_provider_without_variables_names_both() -> None:
    problems = problems_of({}, require_provider=True)
    assert len(problems) == 2, problems
    assert "GOSENDAPI_API_KEY" in problems[0]
    assert "GOSENDAPI_WEBHOOK_SECRET" in problems[1]


def test_require_provider_with_a_secret_still_names_the_key() -> None:
    problems = problems_of({"GOSENDAPI_WEBHOOK_SECRET": SECRET}, require_provider=True)
    assert len(problems) == 1
    assert "GOSENDAPI_API_KEY" in problems[0]


def test_a_secret_without_a_key_signs_the_fake_providers_webhooks() -> None:
    settings = Settings.from_env({"GOSENDAPI_WEBHOOK_SECRET": SECRET})
    assert settings.uses_fake_provider
    assert settings.webhook_secrets == (SECRET,)


def test_comma_separated_secrets_are_trimmed_and_empty_parts_dropped() -> None:
    env = {"GOSENDAPI_API_KEY": KEY, "GOSENDAPI_WEBHOOK_SECRET": " whsec_new ,whsec_old,, "}
    assert Settings.from_env(env).webhook_secrets == ("whsec_new", "whsec_old")


@pytest.mark.parametrize("value", ["0", "-3", "2.5", "eight", "1e3"])
def test_send_concurrency_must_be_a_positive_whole_number(value: str) -> None:
    [problem] = problems_of({"BOTKIT_SEND_CONCURRENCY": value})
    assert "BOTKIT_SEND_CONCURRENCY" in problem and repr(value) in problem


def test_a_non_ascii_digit_in_send_concurrency_is_a_config_error() -> None:
    """'²'.isdigit() is True but int('²') fails: this was a bare ValueError, not a ConfigError."""
    [problem] = problems_of({"BOTKIT_SEND_CONCURRENCY": "²"})
    assert "BOTKIT_SEND_CONCURRENCY" in problem


@pytest.mark.parametrize("value", ["555 123", "abc", "555-123-456", "\uff11\uff12\uff13"])
def test_phone_number_id_must_be_digits(value: str) -> None:
    [problem] = problems_of({"GOSENDAPI_PHONE_NUMBER_ID": value})
    assert "GOSENDAPI_PHONE_NUMBER_ID" in problem


@pytest.mark.parametrize("value", ["ftp://x/v1", "localhost:8001", "//cloud.gosendapi.com"])
def test_base_url_must_be_http(value: str) -> None:
    [problem] = problems_of({"GOSENDAPI_BASE_URL": value})
    assert "GOSENDAPI_BASE_URL" in problem


def test_settings_are_frozen() -> None:
    settings = Settings.from_env({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.api_key = KEY  # type: ignore[misc]


def test_from_env_does_not_change_the_mapping_it_reads() -> None:
    env = {"GOSENDAPI_API_KEY": KEY, "GOSENDAPI_WEBHOOK_SECRET": f" {SECRET} "}
    before = dict(env)
    Settings.from_env(env)
    assert env == before


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOSENDAPI_API_KEY", KEY)
    monkeypatch.setenv("GOSENDAPI_WEBHOOK_SECRET", SECRET)
    monkeypatch.setenv("BOTKIT_DATABASE", "from-os.db")
    settings = Settings.from_env()
    assert settings.api_key == KEY
    assert settings.database == "from-os.db"


# --- rate limits ------------------------------------------------------------------------------


def test_rates_default_to_the_providers_standard_tier() -> None:
    settings = Settings.from_env({})
    assert settings.rate_per_number == DEFAULT_RATE_PER_NUMBER == 80
    assert settings.rate_per_key == DEFAULT_RATE_PER_KEY == 100
    assert settings.rate_per_number_overrides == ()
    assert Settings() == settings  # built in code, Settings paces like the environment's


def test_rates_and_overrides_are_read() -> None:
    env = {
        "BOTKIT_RATE_PER_NUMBER": "200",
        "BOTKIT_RATE_PER_NUMBER_OVERRIDES": " 555123456789=1000 , 555000=0.5,, ",
        "BOTKIT_RATE_PER_KEY": "500",
    }
    settings = Settings.from_env(env)
    assert settings.rate_per_number == 200
    assert settings.rate_per_number_overrides == (("555123456789", 1000), ("555000", 0.5))
    assert settings.rate_per_key == 500


def test_zero_turns_pacing_off() -> None:
    settings = Settings.from_env({"BOTKIT_RATE_PER_NUMBER": "0", "BOTKIT_RATE_PER_KEY": "0"})
    assert (settings.rate_per_number, settings.rate_per_key) == (0, 0)


@pytest.mark.parametrize("name", ["BOTKIT_RATE_PER_NUMBER", "BOTKIT_RATE_PER_KEY"])
@pytest.mark.parametrize("value", ["-1", "fast", "inf", "nan", "1e3", "1_000", "\uff18\uff10"])
def test_a_rate_must_be_a_plain_number(name: str, value: str) -> None:
    [problem] = problems_of({name: value})
    assert name in problem and repr(value) in problem and "0 to turn it off" in problem


@pytest.mark.parametrize(
    "value",
    ["555123456789", "555123456789=", "=200", "abc=200", "555=fast", "555=-1", "+555 1=200"],
)
def test_a_malformed_override_names_itself_and_the_form(value: str) -> None:
    [problem] = problems_of({"BOTKIT_RATE_PER_NUMBER_OVERRIDES": f"555000=80,{value}"})
    assert "BOTKIT_RATE_PER_NUMBER_OVERRIDES" in problem
    assert repr(value) in problem and "PHONE_NUMBER_ID=RATE" in problem


def test_an_override_given_twice_is_an_error() -> None:
    [problem] = problems_of({"BOTKIT_RATE_PER_NUMBER_OVERRIDES": "555=80,556=1,555=200"})
    assert "BOTKIT_RATE_PER_NUMBER_OVERRIDES" in problem and "555 twice" in problem


def test_rate_problems_are_listed_with_the_others() -> None:
    env = {
        "BOTKIT_SEND_CONCURRENCY": "0",
        "BOTKIT_RATE_PER_NUMBER": "-80",
        "BOTKIT_RATE_PER_NUMBER_OVERRIDES": "x=1,y=2",
        "BOTKIT_RATE_PER_KEY": "lots",
    }
    problems = problems_of(env)
    assert len(problems) == 5, problems
    assert [p.split(" ")[0].rstrip(":") for p in problems] == [
        "BOTKIT_SEND_CONCURRENCY",
        "BOTKIT_RATE_PER_NUMBER",
        "BOTKIT_RATE_PER_NUMBER_OVERRIDES",
        "BOTKIT_RATE_PER_NUMBER_OVERRIDES",
        "BOTKIT_RATE_PER_KEY",
    ]


# --- retention -----------------------------------------------------------------------------------


def test_finished_work_is_kept_seven_days_by_default() -> None:
    assert Settings.from_env({}).retention == DEFAULT_RETENTION_DAYS * DAY == 7 * 24 * 3600
    assert Settings().retention == Settings.from_env({}).retention


@pytest.mark.parametrize(("value", "hours"), [("30", 720), ("0.5", 12), (" 0.25 ", 6)])
def test_the_retention_is_read_in_days_decimals_allowed(value: str, hours: float) -> None:
    assert Settings.from_env({"BOTKIT_RETENTION_DAYS": value}).retention == hours * 3600


def test_the_shortest_retention_outlasts_the_providers_redeliveries() -> None:
    assert REDELIVERY_HORIZON == 0 + 60 + 300 + 1800 + 7200  # about 2.6 hours
    assert MIN_RETENTION == 6 * 3600 > 2 * REDELIVERY_HORIZON


@pytest.mark.parametrize("value", ["0.2", "0", "0.000001"])
def test_a_retention_under_six_hours_is_refused_saying_why(value: str) -> None:
    [problem] = problems_of({"BOTKIT_RETENTION_DAYS": value})
    assert "BOTKIT_RETENTION_DAYS" in problem and repr(value) in problem
    assert "at least 0.25 (6 hours)" in problem
    assert "redelivers a webhook for about 2.6 hours" in problem


@pytest.mark.parametrize("value", ["a week", "-7", "1e3", "7d", "inf", "\uff17"])
def test_a_retention_must_be_a_number_of_days(value: str) -> None:
    [problem] = problems_of({"BOTKIT_RETENTION_DAYS": value})
    assert "BOTKIT_RETENTION_DAYS" in problem and repr(value) in problem
    assert "number of days" in problem


def test_a_retention_problem_is_listed_with_the_others() -> None:
    problems = problems_of({"BOTKIT_SEND_CONCURRENCY": "0", "BOTKIT_RETENTION_DAYS": "0.1"})
    assert [p.split()[0] for p in problems] == ["BOTKIT_SEND_CONCURRENCY", "BOTKIT_RETENTION_DAYS"]


@pytest.mark.parametrize("value", ["0", "-2", "many", "1.5"])
def test_a_database_pool_that_is_not_a_positive_whole_number_is_refused(value: str) -> None:
    [problem] = problems_of({"BOTKIT_DATABASE_POOL": value})
    assert problem == f"BOTKIT_DATABASE_POOL must be a positive whole number, not {value!r}"


def test_the_lease_is_read_and_a_short_one_refused() -> None:
    assert Settings.from_env({}).lease == 60.0
    assert Settings.from_env({"BOTKIT_LEASE_SECONDS": "5"}).lease == 5.0
    [problem] = problems_of({"BOTKIT_LEASE_SECONDS": "2"})
    assert problem.startswith("BOTKIT_LEASE_SECONDS must be at least 3")


# --- the edge ------------------------------------------------------------------------------------


def test_the_edge_defaults_to_five_seconds_for_a_head_and_ten_for_a_body() -> None:
    settings = Settings.from_env({})
    assert (settings.header_timeout, settings.body_timeout) == (5.0, 10.0)
    assert settings.max_connections == 4096
    assert Settings() == settings


def test_the_edge_settings_are_read() -> None:
    env = {
        "BOTKIT_HEADER_TIMEOUT": "2.5",
        "BOTKIT_BODY_TIMEOUT": "30",
        "BOTKIT_MAX_CONNECTIONS": "20000",
    }
    settings = Settings.from_env(env)
    assert (settings.header_timeout, settings.body_timeout) == (2.5, 30.0)
    assert settings.max_connections == 20000


@pytest.mark.parametrize("value", ["0", "-1", "soon", "inf", "1e3"])
def test_an_edge_timeout_must_be_a_positive_number_of_seconds(value: str) -> None:
    problems = problems_of({"BOTKIT_HEADER_TIMEOUT": value, "BOTKIT_BODY_TIMEOUT": value})
    assert problems == tuple(
        f"{name} must be a positive number of seconds, such as 5 or 0.5; not {value!r}"
        for name in ("BOTKIT_HEADER_TIMEOUT", "BOTKIT_BODY_TIMEOUT")
    )


def test_each_bot_has_its_own_database_unless_botkit_database_names_one() -> None:
    assert database_for("bots.clinic") == "botkit-clinic.db"
    assert database_for("bots.pizza") == "botkit-pizza.db"
    assert database_for("shop:Orders") == "botkit-shop-Orders.db"
    assert database_for("bots.clinic", prefix="botkit-dev") == "botkit-dev-clinic.db"
    assert database_for("../x:a/b") == "botkit-x-a_b.db"  # nothing but a file in this folder
    own = Settings.from_env({}, default_database=database_for("bots.pizza"))
    assert own.database == "botkit-pizza.db"
    named = {"BOTKIT_DATABASE": "shared.db"}
    assert Settings.from_env(named, default_database="botkit-pizza.db").database == "shared.db"


def test_the_log_is_text_with_numbers_masked_at_the_commands_level_by_default() -> None:
    assert Settings.from_env({}).log == LogSettings("text", None, "masked")
    assert LogSettings.from_env({}) == LogSettings()


def test_the_log_settings_are_read_in_any_case() -> None:
    env = {"BOTKIT_LOG_FORMAT": "JSON", "BOTKIT_LOG_LEVEL": "Debug", "BOTKIT_LOG_PHONE": "full"}
    assert Settings.from_env(env).log == LogSettings("json", "debug", "full")
    assert LogSettings.from_env(env) == LogSettings("json", "debug", "full")


def test_bad_log_settings_name_each_variable_and_its_choices() -> None:
    env = {"BOTKIT_LOG_FORMAT": "xml", "BOTKIT_LOG_LEVEL": "loud", "BOTKIT_LOG_PHONE": "hidden"}
    with pytest.raises(ConfigError) as caught:
        LogSettings.from_env(env)
    assert caught.value.problems == (
        "BOTKIT_LOG_FORMAT must be one of text, json; not 'xml'",
        "BOTKIT_LOG_LEVEL must be one of critical, error, warning, info, debug; not 'loud'",
        "BOTKIT_LOG_PHONE must be one of masked, full; not 'hidden'",
    )
    with pytest.raises(ConfigError, match="BOTKIT_LOG_FORMAT"):
        Settings.from_env({"BOTKIT_LOG_FORMAT": "xml"})


def test_metrics_are_on_without_a_token_and_readiness_allows_five_minutes_by_default() -> None:
    settings = Settings.from_env({})
    assert (settings.metrics, settings.metrics_token, settings.ready_max_age) == (True, None, 300)


@pytest.mark.parametrize(
    ("value", "on"), [("off", False), ("OFF", False), ("0", False), ("on", True)]
)
def test_botkit_metrics_turns_them_on_or_off(value: str, on: bool) -> None:
    assert Settings.from_env({"BOTKIT_METRICS": value}).metrics is on


def test_the_metrics_token_and_the_readiness_age_are_read() -> None:
    env = {"BOTKIT_METRICS_TOKEN": " scrape-me ", "BOTKIT_READY_MAX_AGE": "90.5"}
    settings = Settings.from_env(env)
    assert (settings.metrics_token, settings.ready_max_age) == ("scrape-me", 90.5)


def test_bad_metrics_and_readiness_values_are_named() -> None:
    problems = problems_of({"BOTKIT_METRICS": "maybe", "BOTKIT_READY_MAX_AGE": "soon"})
    assert any("BOTKIT_METRICS must be on or off, not 'maybe'" in p for p in problems)
    assert any("BOTKIT_READY_MAX_AGE must be a positive number of seconds" in p for p in problems)
