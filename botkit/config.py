"""Settings, read once from the environment (the only reader of os.environ)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from botkit.exceptions import ConfigError
from botkit.logsafe import FORMATS, MASKED, PHONE_MODES, TEXT

DEFAULT_BASE_URL = "https://cloud.gosendapi.com/v1"
DEFAULT_DATABASE = "botkit.db"  # Settings() built in code; the commands name a file per bot
DEV_WEBHOOK_SECRET = "whsec_botkit_dev"
# The business number of the built-in fake GoSendAPI (the number its events come to).
DEV_PHONE_NUMBER_ID = "555123456789"
API_KEY_PREFIXES = ("gsk_test_", "gsk_live_")
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RATE_PER_NUMBER = 80.0  # messages/s per sending number: GoSendAPI's standard tier
DEFAULT_RATE_PER_KEY = 100.0  # requests/s per API key: GoSendAPI's standard limit
DEFAULT_MEDIA_MAX_AGE_DAYS = 29  # the provider keeps uploaded media 30 days (WhatsApp's rule)
DAY = 24 * 3600.0
DEFAULT_DATABASE_POOL = 10  # connections per process to a PostgreSQL database
# A claim lasts this long unless renewed (every third of it): how long the work of a worker
# that died waits before another takes it over.
DEFAULT_LEASE_SECONDS = 60
MIN_LEASE_SECONDS = 3
HOUR = 3600.0
# The provider retries a webhook it got no 2xx for 0 s, 1 min, 5 min, 30 min and 2 h after the
# attempt before: its last redelivery comes 2.6 hours after the first delivery.
REDELIVERY_DELAYS = (0.0, 60.0, 300.0, 1800.0, 7200.0)
REDELIVERY_HORIZON = sum(REDELIVERY_DELAYS)
# How long the store keeps finished work (events, sends, delivery statuses), and at least: over
# twice the redelivery horizon, so that a late redelivery is still recognised as a duplicate.
DEFAULT_RETENTION_DAYS = 7
MIN_RETENTION = 6 * HOUR
# The edge (botkit/web/server.py): a connection has this long to send a complete request head,
# a request this long after its head to send its body; more connections than this close the
# longest-idle ones.
DEFAULT_HEADER_TIMEOUT = 5.0
DEFAULT_BODY_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 4096
# /readyz answers 503 once the oldest event waiting to be processed is older than this
DEFAULT_READY_MAX_AGE = 300.0
# BOTKIT_TRACING: spans of each event through OpenTelemetry (botkit.tracing, docs/tracing.md):
# auto (on when OpenTelemetry is installed and set up), on (it must be installed), or off
TRACING_AUTO = "auto"
TRACING_MODES = (TRACING_AUTO, "on", "off")

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

_DIGITS = re.compile(r"[0-9]{1,32}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_DECIMAL = re.compile(r"[0-9]{1,9}(\.[0-9]{1,9})?")


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How a process logs: BOTKIT_LOG_FORMAT (text or json), BOTKIT_LOG_LEVEL (None: the
    command's own default) and BOTKIT_LOG_PHONE (users' numbers masked or full)."""

    format: str = TEXT
    level: str | None = None
    phones: str = MASKED

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LogSettings:
        """Reads the three variables; a ConfigError names each bad value and what it may be."""
        problems: list[str] = []
        found = cls._read(os.environ if environ is None else environ, problems)
        if problems:
            raise ConfigError(problems)
        return found

    @classmethod
    def _read(cls, env: Mapping[str, str], problems: list[str]) -> LogSettings:
        return cls(
            format=_choice(env, "BOTKIT_LOG_FORMAT", FORMATS, TEXT, problems) or TEXT,
            level=_choice(env, "BOTKIT_LOG_LEVEL", LOG_LEVELS, None, problems),
            phones=_choice(env, "BOTKIT_LOG_PHONE", PHONE_MODES, MASKED, problems) or MASKED,
        )


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything botkit reads from the environment, validated; never mutated after reading."""

    base_url: str = DEFAULT_BASE_URL
    api_key: str | None = None
    webhook_secrets: tuple[str, ...] = (DEV_WEBHOOK_SECRET,)
    phone_number_id: str | None = None
    database: str = DEFAULT_DATABASE
    api_token: str | None = None
    max_body_bytes: int = MAX_BODY_BYTES
    send_concurrency: int = 16
    rate_per_number: float = DEFAULT_RATE_PER_NUMBER
    rate_per_number_overrides: tuple[tuple[str, float], ...] = ()
    rate_per_key: float = DEFAULT_RATE_PER_KEY
    media_max_age: float = DEFAULT_MEDIA_MAX_AGE_DAYS * DAY
    database_pool: int = DEFAULT_DATABASE_POOL
    lease: float = DEFAULT_LEASE_SECONDS  # seconds a worker's claim lasts unless renewed
    retention: float = DEFAULT_RETENTION_DAYS * DAY  # seconds finished work is kept
    header_timeout: float = DEFAULT_HEADER_TIMEOUT  # seconds for a complete request head
    body_timeout: float = DEFAULT_BODY_TIMEOUT  # seconds for a body, from its head
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # open at once, idle ones closed past it
    log: LogSettings = LogSettings()
    metrics: bool = True  # BOTKIT_METRICS=off: nothing counted, no GET /metrics
    metrics_token: str | None = None  # GET /metrics wants Authorization: Bearer this
    ready_max_age: float = DEFAULT_READY_MAX_AGE  # seconds the oldest pending event may wait
    tracing: str = TRACING_AUTO  # BOTKIT_TRACING: auto, on or off (botkit.tracing)
    handoff_url: str | None = None  # where a handed-off user's messages are posted
    handoff_secret: str | None = None  # signs them (X-Botkit-Signature)

    @property
    def uses_fake_provider(self) -> bool:
        """True when no provider key is configured: replies go to the built-in fake GoSendAPI."""
        return self.api_key is None

    @property
    def sending_number(self) -> str | None:
        """The number a proactive send that names none goes out from: GOSENDAPI_PHONE_NUMBER_ID,
        else, against the built-in fake provider, the fake's own business number."""
        if self.phone_number_id is None and self.uses_fake_provider:
            return DEV_PHONE_NUMBER_ID
        return self.phone_number_id

    def warnings(self) -> tuple[str, ...]:
        """What is accepted but looks wrong, for the start-up banner (never a secret's value)."""
        odd = [
            n for n, secret in enumerate(self.webhook_secrets, 1) if not secret.startswith("whsec_")
        ]
        if not odd:
            return ()
        which = "" if len(self.webhook_secrets) == 1 else f" (number {', '.join(map(str, odd))})"
        return (
            f"GOSENDAPI_WEBHOOK_SECRET{which} does not start with whsec_: GoSendAPI's webhook "
            "secrets do; is it the API key or a secret from elsewhere? Webhooks signed with the "
            "real secret will be refused with 401",
        )

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        require_provider: bool = False,
        default_database: str = DEFAULT_DATABASE,
    ) -> Settings:
        """Reads and checks every variable; a ConfigError lists all the problems at once.

        Without GOSENDAPI_API_KEY botkit runs against its built-in fake provider with a
        development webhook secret, unless `require_provider` is set (as in the Dockerfile).
        Without BOTKIT_DATABASE the database is `default_database` (the commands pass the
        bot's own, `database_for`).
        """
        env = os.environ if environ is None else environ
        problems: list[str] = []
        api_key = _optional(env, "GOSENDAPI_API_KEY")
        secrets = _secrets(env.get("GOSENDAPI_WEBHOOK_SECRET", ""))
        if api_key is None and require_provider:
            problems.append("GOSENDAPI_API_KEY is not set (the key from the GoSendAPI dashboard)")
        if api_key is not None and not api_key.startswith(API_KEY_PREFIXES):
            problems.append("GOSENDAPI_API_KEY must start with gsk_test_ or gsk_live_")
        if not secrets and (api_key is not None or require_provider):
            problems.append(
                "GOSENDAPI_WEBHOOK_SECRET is not set (the whsec_... secret shown when the "
                "webhook was created; several may be given, comma-separated, while rotating)"
            )
        phone_number_id = _optional(env, "GOSENDAPI_PHONE_NUMBER_ID")
        if phone_number_id is not None and not _DIGITS.fullmatch(phone_number_id):
            problems.append(
                "GOSENDAPI_PHONE_NUMBER_ID must be the numeric Meta phone number id, "
                f"not {phone_number_id!r}"
            )
        base_url = env.get("GOSENDAPI_BASE_URL", "").strip() or DEFAULT_BASE_URL
        if not base_url.startswith(("http://", "https://")):
            problems.append(f"GOSENDAPI_BASE_URL must be an http(s) URL, not {base_url!r}")
        concurrency = _int(env, "BOTKIT_SEND_CONCURRENCY", 16, problems)
        pool = _int(env, "BOTKIT_DATABASE_POOL", DEFAULT_DATABASE_POOL, problems)
        lease = _int(env, "BOTKIT_LEASE_SECONDS", DEFAULT_LEASE_SECONDS, problems)
        if lease < MIN_LEASE_SECONDS:
            problems.append(
                f"BOTKIT_LEASE_SECONDS must be at least {MIN_LEASE_SECONDS} (claims are renewed "
                f"every third of it), not {lease}"
            )
        per_number = _rate(env, "BOTKIT_RATE_PER_NUMBER", DEFAULT_RATE_PER_NUMBER, problems)
        overrides = _overrides(env.get("BOTKIT_RATE_PER_NUMBER_OVERRIDES", ""), problems)
        per_key = _rate(env, "BOTKIT_RATE_PER_KEY", DEFAULT_RATE_PER_KEY, problems)
        media_days = _int(env, "BOTKIT_MEDIA_MAX_AGE_DAYS", DEFAULT_MEDIA_MAX_AGE_DAYS, problems)
        retention = _retention(env, problems)
        header_timeout = _seconds(env, "BOTKIT_HEADER_TIMEOUT", DEFAULT_HEADER_TIMEOUT, problems)
        body_timeout = _seconds(env, "BOTKIT_BODY_TIMEOUT", DEFAULT_BODY_TIMEOUT, problems)
        connections = _int(env, "BOTKIT_MAX_CONNECTIONS", DEFAULT_MAX_CONNECTIONS, problems)
        log = LogSettings._read(env, problems)
        metrics = _switch(env, "BOTKIT_METRICS", problems)
        ready_max_age = _seconds(env, "BOTKIT_READY_MAX_AGE", DEFAULT_READY_MAX_AGE, problems)
        tracing = _choice(env, "BOTKIT_TRACING", TRACING_MODES, TRACING_AUTO, problems)
        handoff_url, handoff_secret = _handoff(env, problems)
        if problems:
            raise ConfigError(problems)
        return cls(
            base_url=base_url.rstrip("/"),
            api_key=api_key,
            webhook_secrets=secrets or (DEV_WEBHOOK_SECRET,),
            phone_number_id=phone_number_id,
            database=env.get("BOTKIT_DATABASE", "").strip() or default_database,
            api_token=_optional(env, "BOTKIT_API_TOKEN"),
            send_concurrency=concurrency,
            database_pool=pool,
            lease=float(lease),
            rate_per_number=per_number,
            rate_per_number_overrides=overrides,
            rate_per_key=per_key,
            media_max_age=media_days * DAY,
            retention=retention,
            header_timeout=header_timeout,
            body_timeout=body_timeout,
            max_connections=connections,
            log=log,
            metrics=metrics,
            metrics_token=_optional(env, "BOTKIT_METRICS_TOKEN"),
            ready_max_age=ready_max_age,
            tracing=tracing or TRACING_AUTO,
            handoff_url=handoff_url,
            handoff_secret=handoff_secret,
        )


def _handoff(env: Mapping[str, str], problems: list[str]) -> tuple[str | None, str | None]:
    """BOTKIT_HANDOFF_URL and BOTKIT_HANDOFF_SECRET: both or neither."""
    url, secret = _optional(env, "BOTKIT_HANDOFF_URL"), _optional(env, "BOTKIT_HANDOFF_SECRET")
    if url is not None and not url.startswith(("http://", "https://")):
        problems.append(f"BOTKIT_HANDOFF_URL must be an http(s) URL, not {url[:80]!r}")
    if url is not None and secret is None:
        problems.append(
            "BOTKIT_HANDOFF_SECRET is not set: it signs what botkit posts to BOTKIT_HANDOFF_URL "
            "(X-Botkit-Signature); choose a long random string and give it to the receiver"
        )
    if secret is not None and url is None:
        problems.append(
            "BOTKIT_HANDOFF_SECRET is set but BOTKIT_HANDOFF_URL is not: set the URL that "
            "receives handed-off users' messages, or unset the secret"
        )
    return url, secret


def database_for(target: str, *, prefix: str = "botkit") -> str:
    """A bot's own SQLite file in the working folder, named after its module (and attribute):
    `bots.clinic` -> botkit-clinic.db, `bots.shop:Orders` -> botkit-shop-Orders.db. Each bot
    keeps its users apart from other bots' unless BOTKIT_DATABASE names a shared database."""
    module, _, attr = target.partition(":")
    name = "-".join(part for part in (module.rpartition(".")[2], attr) if part)
    return f"{prefix}-{_UNSAFE.sub('_', name).strip('_-') or 'bot'}.db"


def _choice(
    env: Mapping[str, str],
    name: str,
    choices: tuple[str, ...],
    default: str | None,
    problems: list[str],
) -> str | None:
    """One of `choices` (any case), or `default` when unset."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if raw.lower() not in choices:
        problems.append(f"{name} must be one of {', '.join(choices)}; not {raw!r}")
        return default
    return raw.lower()


def _optional(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def _switch(env: Mapping[str, str], name: str, problems: list[str]) -> bool:
    """An on/off variable, on when unset."""
    raw = env.get(name, "").strip().lower()
    if raw in ("", "on", "true", "1", "yes"):
        return True
    if raw in ("off", "false", "0", "no"):
        return False
    problems.append(f"{name} must be on or off, not {raw!r}")
    return True


def _secrets(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _int(env: Mapping[str, str], name: str, default: int, problems: list[str]) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        problems.append(f"{name} must be a positive whole number, not {raw!r}")
        return default
    return int(raw)


def _seconds(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    """A positive number of seconds, decimals allowed (0.5)."""
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not _DECIMAL.fullmatch(raw) or float(raw) <= 0:
        problems.append(
            f"{name} must be a positive number of seconds, such as 5 or 0.5; not {raw!r}"
        )
        return default
    return float(raw)


def _rate(env: Mapping[str, str], name: str, default: float, problems: list[str]) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    rate = _per_second(raw)
    if rate is None:
        problems.append(f"{name} must be a number a second, 0 to turn it off; not {raw!r}")
        return default
    return rate


def _per_second(raw: str) -> float | None:
    """A non-negative, finite number of sends a second, or None."""
    if not _DECIMAL.fullmatch(raw):  # float() would also take "inf", "nan" and "1_000"
        return None
    return float(raw)


def _retention(env: Mapping[str, str], problems: list[str]) -> float:
    """BOTKIT_RETENTION_DAYS, in seconds: days, decimals allowed, never under MIN_RETENTION."""
    name = "BOTKIT_RETENTION_DAYS"
    default = DEFAULT_RETENTION_DAYS * DAY
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not _DECIMAL.fullmatch(raw):
        problems.append(f"{name} must be a number of days, such as 7 or 0.5; not {raw!r}")
        return default
    seconds = float(raw) * DAY
    if seconds < MIN_RETENTION:
        problems.append(
            f"{name} is {raw!r} ({seconds / HOUR:g} hours): it must be at least "
            f"{MIN_RETENTION / DAY:g} ({MIN_RETENTION / HOUR:g} hours), because the provider "
            f"redelivers a webhook for about {REDELIVERY_HORIZON / HOUR:.1f} hours and an event "
            "forgotten before its last redelivery would be taken for a new one and run again"
        )
        return default
    return seconds


def _overrides(raw: str, problems: list[str]) -> tuple[tuple[str, float], ...]:
    """BOTKIT_RATE_PER_NUMBER_OVERRIDES: "555123456789=200,555000=1000"."""
    name = "BOTKIT_RATE_PER_NUMBER_OVERRIDES"
    found: dict[str, float] = {}
    for part in (part.strip() for part in raw.split(",")):
        if not part:
            continue
        number, equals, value = (piece.strip() for piece in part.partition("="))
        rate = _per_second(value)
        if not equals or not _DIGITS.fullmatch(number) or rate is None:
            problems.append(
                f"{name}: {part!r} is not PHONE_NUMBER_ID=RATE (digits = messages a second), "
                'e.g. "555123456789=200,555000000001=1000"'
            )
        elif number in found:
            problems.append(f"{name} gives {number} twice")
        else:
            found[number] = rate
    return tuple(found.items())
