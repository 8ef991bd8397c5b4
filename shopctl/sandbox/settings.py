"""Settings of the Stripe sandbox, validated once before the server starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


class SettingsError(ValueError):
    """A setting has a value the sandbox cannot run with."""


@dataclass
class SandboxSettings:
    host: str = "127.0.0.1"
    port: int = 12111
    webhook_urls: list[str] = field(default_factory=list)
    webhook_secret: str = "whsec_sandbox"
    latency_ms: int = 0
    fail_rate: float = 0.0
    state_file: Path | None = None
    public_url: str | None = None
    # Seconds to wait before each retry of a failed webhook delivery.
    retry_backoffs: tuple[float, ...] = (0.2, 1.0, 3.0)
    delivery_timeout: float = 5.0
    webhooks_enabled: bool = True

    def validate(self) -> SandboxSettings:
        """Raise SettingsError naming the first bad value; return self."""
        if not 0 < int(self.port) < 65536:
            raise SettingsError(f"port must be between 1 and 65535, got {self.port}")
        check_latency(self.latency_ms)
        check_fail_rate(self.fail_rate)
        check_secret(self.webhook_secret)
        for url in self.webhook_urls:
            check_url(url, "webhook URL")
        if self.public_url:
            check_url(self.public_url, "public URL")
        if any(b < 0 for b in self.retry_backoffs):
            raise SettingsError("retry backoffs must not be negative")
        return self

    def base_url(self) -> str:
        """The address the sandbox is reached at (used in session URLs)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


def check_latency(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"latency_ms must be a whole number >= 0, got {value!r}")
    return value


def check_fail_rate(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise SettingsError(f"fail_rate must be a number between 0 and 1, got {value!r}")
    return float(value)


def check_secret(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingsError("webhook secret must be a non-empty string (e.g. whsec_sandbox)")
    return value


def check_url(value: object, what: str) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        _ = parts and parts.port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingsError(f"{what} must be an http(s) URL with a host, got {value!r}")
    return value


@dataclass
class Runtime:
    """The settings tests may change while the sandbox runs (see /_sandbox/config)."""

    webhook_urls: list[str]
    webhook_secret: str
    webhooks_enabled: bool
    latency_ms: int
    fail_rate: float
    # Answer the next N API requests with a 500, whatever fail_rate says: deterministic tests.
    fail_next: int = 0
    # How new refunds start: "succeeded" (card refunds in test mode) or "pending", until
    # POST /_sandbox/refunds/{id}/fail or …/succeed ends them.
    refund_status: str = "succeeded"

    @classmethod
    def from_settings(cls, settings: SandboxSettings) -> Runtime:
        return cls(
            list(settings.webhook_urls),
            settings.webhook_secret,
            settings.webhooks_enabled,
            settings.latency_ms,
            settings.fail_rate,
        )

    def update(self, changes: dict[str, object]) -> None:
        """Validate every change first, then apply them all (or none)."""
        checked = {
            name: _RUNTIME_CHECKS[name](value) if name in _RUNTIME_CHECKS else _unknown(name)
            for name, value in changes.items()
        }
        for name, value in checked.items():
            setattr(self, name, value)


def _unknown(name: str) -> None:
    raise SettingsError(f"unknown setting {name!r}; known: {', '.join(_RUNTIME_CHECKS)}")


def check_urls(value: object) -> list[str]:
    if not isinstance(value, list):
        raise SettingsError("webhook_urls must be a list of URLs")
    return [check_url(url, "webhook URL") for url in value]


def _check_flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise SettingsError(f"webhooks_enabled must be true or false, got {value!r}")
    return value


def _check_count(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SettingsError(f"fail_next must be a whole number >= 0, got {value!r}")
    return value


def _check_refund_status(value: object) -> str:
    if value not in ("succeeded", "pending"):
        raise SettingsError(f'refund_status must be "succeeded" or "pending", got {value!r}')
    return value


_RUNTIME_CHECKS = {
    "webhook_urls": check_urls,
    "webhook_secret": check_secret,
    "webhooks_enabled": _check_flag,
    "latency_ms": check_latency,
    "fail_rate": check_fail_rate,
    "fail_next": _check_count,
    "refund_status": _check_refund_status,
}
