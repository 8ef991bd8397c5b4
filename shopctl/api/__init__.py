"""Front door 1: the Sanic REST API under /api/v1. Handlers parse, call a service, render."""
