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

DEV_ACCESS_SECRET = "dev-access-secret-change-me"
DEV_REFRESH_SECRET = "dev-refresh-secret-change-me"
DEV_STRIPE_KEY = "sk_test_sandbox"
DEV_WEBHOOK_SECRET = "whsec_sandbox"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_DURATION_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """Seconds in a seed-style duration: `15m`, `7d`, `12h`, `90` (seconds)."""
    match = _DURATION.match(str(text))
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 15m, 12h, 7d)")
    number, unit = match.groups()
    return float(number) * _DURATION_SECONDS[unit or "s"]


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///shopctl.db"
    port: int = 8000
    env: str = "development"
    frontend_urls: tuple[str, ...] = ("http://localhost:3000",)
    jwt_access_secret: str = DEV_ACCESS_SECRET
    jwt_refresh_secret: str = DEV_REFRESH_SECRET
    jwt_access_expires: float = 15 * 60
    jwt_refresh_expires: float = 7 * 86400
    bcrypt_salt_rounds: int = 12
    stripe_secret_key: str = DEV_STRIPE_KEY
    stripe_webhook_secrets: tuple[str, ...] = (DEV_WEBHOOK_SECRET,)
    stripe_currency: str = "usd"
    stripe_api_base: str | None = None
    order_reservation_minutes: float = 30.0
    # Monitoring: /metrics needs `Authorization: Bearer <metrics_token>` (unset: 404).
    metrics_token: str | None = None
    log_format: str = "auto"  # json | text | auto (text on a terminal, JSON otherwise)
    # prometheus-client's multiprocess directory, set by `shopctl serve` for its workers.
    metrics_dir: str | None = None
    # OpenTelemetry traces: the exporter ("otlp", "console") when OTEL_TRACES_EXPORTER or
    # an OTLP endpoint is set, else "" (off); the SDK reads the other OTEL_* variables.
    traces: str = ""
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

    def insecure_settings(self) -> list[str]:
        """Names of secrets that are missing or still at their development default."""
        defaults = {
            "JWT_ACCESS_SECRET": (self.jwt_access_secret, DEV_ACCESS_SECRET),
            "JWT_REFRESH_SECRET": (self.jwt_refresh_secret, DEV_REFRESH_SECRET),
            "STRIPE_SECRET_KEY": (self.stripe_secret_key, DEV_STRIPE_KEY),
            "STRIPE_WEBHOOK_SECRET": (",".join(self.stripe_webhook_secrets), DEV_WEBHOOK_SECRET),
        }
        return [
            name
            for name, (value, default) in defaults.items()
            if name in self.unset or not value.strip() or value == default
        ]

    def check_production(self) -> None:
        """Refuse to run in production with a missing or default secret."""
        if self.is_production and (bad := self.insecure_settings()):
            raise ConfigError(
                "production refuses missing or default secrets: set " + ", ".join(bad)
            )


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
        jwt_access_secret=raw.get("JWT_ACCESS_SECRET", defaults.jwt_access_secret),
        jwt_refresh_secret=raw.get("JWT_REFRESH_SECRET", defaults.jwt_refresh_secret),
        jwt_access_expires=_duration(raw, "JWT_ACCESS_EXPIRES", defaults.jwt_access_expires),
        jwt_refresh_expires=_duration(raw, "JWT_REFRESH_EXPIRES", defaults.jwt_refresh_expires),
        bcrypt_salt_rounds=rounds,
        stripe_secret_key=raw.get("STRIPE_SECRET_KEY", defaults.stripe_secret_key),
        stripe_webhook_secrets=_split(raw.get("STRIPE_WEBHOOK_SECRET", DEV_WEBHOOK_SECRET)),
        stripe_currency=(raw.get("STRIPE_CURRENCY") or defaults.stripe_currency).lower(),
        stripe_api_base=raw.get("STRIPE_API_BASE") or None,
        order_reservation_minutes=_number(
            raw, "ORDER_RESERVATION_MINUTES", float, defaults.order_reservation_minutes
        ),
        metrics_token=raw.get("METRICS_TOKEN", "").strip() or None,
        log_format=log_format,
        metrics_dir=raw.get("PROMETHEUS_MULTIPROC_DIR") or None,
        traces=_traces_wanted(raw),
        unset=frozenset(name for name in secrets if name not in raw),
    )


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
