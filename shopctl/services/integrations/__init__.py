"""Integrations: the outbox, outgoing webhooks, exports and the audit trail."""
