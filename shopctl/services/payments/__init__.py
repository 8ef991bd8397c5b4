"""Payments: the only package that talks to Stripe (gateway, with deadlines), Checkout,
webhooks and their handlers, the event log, sync, reconcile and refunds. Built on orders."""
