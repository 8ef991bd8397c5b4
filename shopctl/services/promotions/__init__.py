"""Promotions: codes, redemptions, allocation and tax. Built on orders and catalog."""
