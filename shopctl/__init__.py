"""shopctl: a shop's backend — one package, a REST API and an operator CLI."""

__version__ = "0.1.0"
