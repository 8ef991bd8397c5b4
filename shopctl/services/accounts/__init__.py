"""Accounts: users, passwords, tokens and sessions, the login limit. The bottom layer."""
