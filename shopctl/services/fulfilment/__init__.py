"""Fulfilment: shipping rates, shipments and returns. Built on payments and orders."""
