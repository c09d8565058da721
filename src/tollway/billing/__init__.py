"""Billing: worst-case bounds, reservations and settlement, credits, crash recovery."""
