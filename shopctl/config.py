"""Settings from the environment, then `.env` in the working directory, then defaults.

Both front doors (the API and the CLI) call `load_settings()` once and pass the
result down; nothing else reads `os.environ`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from shopctl.errors import ConfigError

# Development defaults: public, so never for real money. The JWT ones are 32 bytes or
# more, so PyJWT has nothing to warn about (InsecureKeyLengthWarning, RFC 7518 3.2).
DEV_ACCESS_SECRET = "dev-access-secret-change-me-in-production"
DEV_REFRESH_SECRET = "dev-refresh-secret-change-me-in-production"
DEV_STRIPE_KEY = "sk_test_sandbox"
DEV_WEBHOOK_SECRET = "whsec_sandbox"
DEV_FRONTEND_URLS = ("http://localhost:3000",)
CHECKOUT_RETURNS = ("auto", "builtin", "frontend")
# Every development value ever shipped (older .env.example files carry the first ones).
DEV_VALUES = {
    "JWT_ACCESS_SECRET": frozenset({DEV_ACCESS_SECRET, "dev-access-secret-change-me"}),
    "JWT_REFRESH_SECRET": frozenset({DEV_REFRESH_SECRET, "dev-refresh-secret-change-me"}),
    "STRIPE_SECRET_KEY": frozenset({DEV_STRIPE_KEY}),
    "STRIPE_WEBHOOK_SECRET": frozenset({DEV_WEBHOOK_SECRET}),
}
MIN_JWT_SECRET_BYTES = 32  # HS256: a key shorter than the hash is guessable (RFC 7518 3.2)
LIVE_KEY_PREFIXES = ("sk_live_", "rk_live_")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a duration written as the Express API it replaces wrote them: `15m`,
    `7d`, `12h`, `90` (seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 12h, 7d)")
    number, unit = match.groups()
    return float(number) * _DURATION_SECONDS[unit or "s"]


@dataclass(frozen=True)
class Rate:
    """At most `count` events per `seconds` (a fixed window); written `20/1h`."""

    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count}/{_short_duration(self.seconds)}"


def _short_duration(seconds: float) -> str:
    for unit in ("w", "d", "h", "m"):
        size = _DURATION_SECONDS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def parse_rate(text: str) -> Rate | None:
    """`20/1h` → Rate(20, 3600); `off` (or 0/…) → None, no limit."""
    value = str(text).strip().lower()
    if value in ("off", "none", "0"):
        return None
    count, slash, window = value.partition("/")
    if not slash or not count.strip().isdigit():
        raise ValueError(f"not a rate: {text!r} (use e.g. 20/1h, or off)")
    seconds = parse_duration(window)
    if seconds <= 0:
        raise ValueError(f"not a rate: {text!r} (the window must be longer than 0)")
    return Rate(int(count), seconds) if int(count) > 0 else None


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///shopctl.db"
    port: int = 8000
    env: str = "development"
    frontend_urls: tuple[str, ...] = DEV_FRONTEND_URLS
    checkout_return: str = "auto"
    jwt_access_secret: str = DEV_ACCESS_SECRET
    jwt_refresh_secret: str = DEV_REFRESH_SECRET
    jwt_access_expires: float = 15 * 60
    jwt_refresh_expires: float = 7 * 86400
    bcrypt_salt_rounds: int = 12
    stripe_secret_key: str = DEV_STRIPE_KEY
    stripe_webhook_secrets: tuple[str, ...] = (DEV_WEBHOOK_SECRET,)
    stripe_currency: str = "usd"
    stripe_api_base: str | None = None
    stripe_timeout: float = 10.0
    order_reservation_minutes: float = 30.0
    # Monitoring: /metrics needs `Authorization: Bearer <metrics_token>` (unset: 404).
    metrics_token: str | None = None
    log_format: str = "auto"  # json | text | auto (text on a terminal, JSON otherwise)
    # prometheus-client's multiprocess directory, set by `shopctl serve` for its workers.
    metrics_dir: str | None = None
    # OpenTelemetry traces: the exporter ("otlp", "console") when OTEL_TRACES_EXPORTER or
    # an OTLP endpoint is set, else "" (off); the SDK reads the other OTEL_* variables.
    traces: str = ""
    # Abuse limits and retention (issue 16); README "Limits" explains each.
    max_open_orders: int = 5
    order_rate: Rate | None = Rate(30, 3600)
    registration_rate: Rate | None = Rate(20, 3600)
    event_retention_days: float = 90.0
    ship_within_days: float = 3.0  # doctor: paid orders not shipped by then
    # Countries Checkout collects a shipping address for (empty: nothing is shipped).
    shipping_countries: tuple[str, ...] = ()
    unset: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def metrics_enabled(self) -> bool:
        """Metrics are collected once someone can read them: a token, or serve's port."""
        return bool(self.metrics_token or self.metrics_dir)

    @property
    def frontend_url(self) -> str:
        return self.frontend_urls[0]

    @property
    def builtin_checkout_pages(self) -> bool:
        """Checkout returns to the pages `shopctl serve` serves (`/checkout/success`, …):
        asked for, or by default while FRONTEND_URL is left at its development value
        (no storefront of one's own yet, so nobody serves its /payment/success page)."""
        if self.checkout_return == "auto":
            return tuple(url.rstrip("/") for url in self.frontend_urls) == DEV_FRONTEND_URLS
        return self.checkout_return == "builtin"

    @property
    def live_stripe_key(self) -> bool:
        return self.stripe_secret_key.strip().startswith(LIVE_KEY_PREFIXES)

    def insecure_settings(self) -> list[str]:
        """Names of secrets that are missing or still at a development default (any one
        of several comma-separated webhook secrets counts)."""
        given = {
            "JWT_ACCESS_SECRET": (self.jwt_access_secret,),
            "JWT_REFRESH_SECRET": (self.jwt_refresh_secret,),
            "STRIPE_SECRET_KEY": (self.stripe_secret_key,),
            "STRIPE_WEBHOOK_SECRET": self.stripe_webhook_secrets or ("",),
        }
        return [
            name
            for name, values in given.items()
            if name in self.unset
            or any(not v.strip() or v.strip() in DEV_VALUES[name] for v in values)
        ]

    def short_jwt_secrets(self) -> list[str]:
        secrets = {"JWT_ACCESS_SECRET": self.jwt_access_secret}
        secrets["JWT_REFRESH_SECRET"] = self.jwt_refresh_secret
        return [n for n, v in secrets.items() if len(v.encode()) < MIN_JWT_SECRET_BYTES]

    def safety_problems(self) -> list[str]:
        """Why this configuration must not run, one sentence per rule broken (none: safe).

        In every mode: a live Stripe key beside any development default (its webhooks
        could be forged with the public default secret). In production: any missing or
        default secret, and JWT secrets under 32 bytes.
        """
        problems = []
        defaults = self.insecure_settings()
        if self.live_stripe_key and defaults:
            problems.append(
                "a live Stripe key (STRIPE_SECRET_KEY=sk_live_…) must not run with "
                "development defaults, which are public: set " + ", ".join(defaults)
            )
        elif self.is_production and defaults:
            problems.append(
                "production refuses missing or default secrets: set " + ", ".join(defaults)
            )
        if self.is_production and (short := self.short_jwt_secrets()):
            problems.append(
                f"production refuses JWT secrets under {MIN_JWT_SECRET_BYTES} bytes: "
                + ", ".join(short)
                + ' (e.g. python -c "import secrets; print(secrets.token_urlsafe(48))")'
            )
        return problems

    def check_safe(self) -> None:
        """Refuse to run (ConfigError naming each setting) when `safety_problems` says so."""
        if problems := self.safety_problems():
            raise ConfigError("; ".join(problems))


def _read_env(env_file: Path | None) -> dict[str, str]:
    values: dict[str, str] = {}
    if env_file is not None and env_file.is_file():
        from dotenv import dotenv_values

        values.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    values.update(os.environ)
    return values


def _split(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


def _number(raw: dict[str, str], name: str, kind, default):
    if name not in raw or raw[name].strip() == "":
        return default
    try:
        value = kind(raw[name])
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {raw[name]!r}") from None
    if value < 0:
        raise ConfigError(f"{name} must not be negative, got {raw[name]!r}")
    return value


def _duration(raw: dict[str, str], name: str, default: float) -> float:
    if name not in raw:
        return default
    try:
        return parse_duration(raw[name])
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _rate(raw: dict[str, str], name: str, default: Rate | None) -> Rate | None:
    if name not in raw or raw[name].strip() == "":
        return default
    try:
        return parse_rate(raw[name])
    except ValueError as exc:
        raise ConfigError(f"{name}: {exc}") from None


def _stripe_timeout(raw: dict[str, str], default: float) -> float:
    """STRIPE_TIMEOUT: seconds (or a duration like 1500ms), one deadline per Stripe call."""
    seconds = _duration(raw, "STRIPE_TIMEOUT", default) if raw.get("STRIPE_TIMEOUT") else default
    if not 0 < seconds <= 120:
        raise ConfigError(f"STRIPE_TIMEOUT must be between 0 and 120 seconds, got {seconds:g}")
    return seconds


def load_settings(env_file: Path | None = Path(".env")) -> Settings:
    """Settings from the environment, then `env_file`, then defaults; raises ConfigError."""
    raw = _read_env(env_file)
    env = raw.get("SHOPCTL_ENV", "development").strip().lower() or "development"
    if env not in ("development", "production", "test"):
        raise ConfigError(f"SHOPCTL_ENV must be development, production or test, got {env!r}")
    secrets = (
        "JWT_ACCESS_SECRET",
        "JWT_REFRESH_SECRET",
        "STRIPE_SECRET_KEY",
        "STRIPE_WEBHOOK_SECRET",
    )
    defaults = Settings()
    checkout_return = raw.get("CHECKOUT_RETURN", "").strip().lower() or defaults.checkout_return
    if checkout_return not in CHECKOUT_RETURNS:
        raise ConfigError(
            f"CHECKOUT_RETURN must be auto, builtin or frontend, got {raw['CHECKOUT_RETURN']!r}"
        )
    rounds = _number(raw, "BCRYPT_SALT_ROUNDS", int, defaults.bcrypt_salt_rounds)
    if not 4 <= rounds <= 31:
        raise ConfigError(f"BCRYPT_SALT_ROUNDS must be between 4 and 31, got {rounds}")
    log_format = (raw.get("LOG_FORMAT") or "auto").strip().lower()
    if log_format not in ("json", "text", "auto"):
        raise ConfigError(f"LOG_FORMAT must be json, text or auto, got {log_format!r}")
    return Settings(
        database_url=raw.get("DATABASE_URL") or defaults.database_url,
        port=_number(raw, "PORT", int, defaults.port),
        env=env,
        frontend_urls=_split(raw.get("FRONTEND_URL", "")) or defaults.frontend_urls,
        checkout_return=checkout_return,
        jwt_access_secret=raw.get("JWT_ACCESS_SECRET", defaults.jwt_access_secret),
        jwt_refresh_secret=raw.get("JWT_REFRESH_SECRET", defaults.jwt_refresh_secret),
        jwt_access_expires=_duration(raw, "JWT_ACCESS_EXPIRES", defaults.jwt_access_expires),
        jwt_refresh_expires=_duration(raw, "JWT_REFRESH_EXPIRES", defaults.jwt_refresh_expires),
        bcrypt_salt_rounds=rounds,
        stripe_secret_key=raw.get("STRIPE_SECRET_KEY", defaults.stripe_secret_key),
        stripe_webhook_secrets=_split(raw.get("STRIPE_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)),
        stripe_currency=(raw.get("STRIPE_CURRENCY") or defaults.stripe_currency).lower(),
        stripe_api_base=raw.get("STRIPE_API_BASE") or None,
        stripe_timeout=_stripe_timeout(raw, defaults.stripe_timeout),
        order_reservation_minutes=_number(
            raw, "ORDER_RESERVATION_MINUTES", float, defaults.order_reservation_minutes
        ),
        metrics_token=raw.get("METRICS_TOKEN", "").strip() or None,
        log_format=log_format,
        metrics_dir=raw.get("PROMETHEUS_MULTIPROC_DIR") or None,
        traces=_traces_wanted(raw),
        max_open_orders=_number(raw, "MAX_OPEN_ORDERS", int, defaults.max_open_orders),
        order_rate=_rate(raw, "ORDER_RATE_LIMIT", defaults.order_rate),
        registration_rate=_rate(raw, "REGISTRATION_RATE_LIMIT", defaults.registration_rate),
        event_retention_days=_number(
            raw, "EVENT_RETENTION_DAYS", float, defaults.event_retention_days
        ),
        ship_within_days=_number(raw, "SHIP_WITHIN_DAYS", float, defaults.ship_within_days),
        shipping_countries=_shipping_countries(raw),
        unset=frozenset(name for name in secrets if name not in raw),
    )


def _shipping_countries(raw: dict[str, str]) -> tuple[str, ...]:
    """SHIPPING_COUNTRIES: `US,CA,GB` (ISO 3166-1 alpha-2, as Stripe Checkout takes them)."""
    from shopctl.countries import SHIPPABLE_COUNTRIES

    codes = tuple(dict.fromkeys(code.upper() for code in _split(raw.get("SHIPPING_COUNTRIES", ""))))
    if unknown := [code for code in codes if code not in SHIPPABLE_COUNTRIES]:
        raise ConfigError(
            "SHIPPING_COUNTRIES takes two-letter country codes Stripe Checkout ships to "
            f"(e.g. US,CA,GB); not {', '.join(unknown)}"
        )
    return codes


def _traces_wanted(raw: dict[str, str]) -> str:
    if raw.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return ""
    exporter = raw.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return ""
    if exporter in ("otlp", "console"):
        return exporter
    if exporter:
        raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {exporter!r}")
    return "otlp" if raw.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() else ""
