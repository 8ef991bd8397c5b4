"""run_sandbox(settings): serve the sandbox in this process until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

from .settings import SandboxSettings


def run_sandbox(settings: SandboxSettings) -> None:
    """Validate, build and serve (one process; Sanic stops cleanly on SIGINT and SIGTERM).

    Raises SettingsError before anything starts if a setting is invalid.
    """
    from .app import create_sandbox_app

    settings.validate()
    app = create_sandbox_app(settings)
    _log_to_stderr().info(
        "Stripe sandbox on %s; webhooks to %s",
        settings.base_url(),
        ", ".join(settings.webhook_urls) or "(none)",
    )
    app.run(
        host=settings.host,
        port=settings.port,
        single_process=True,
        access_log=False,
        motd=False,
        debug=False,
        auto_reload=False,
    )


def _log_to_stderr() -> logging.Logger:
    log = logging.getLogger("shopctl.sandbox")
    if not log.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s sandbox %(levelname)s: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return log
