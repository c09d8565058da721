"""Events and their webhook outbox (SPEC §7)."""

from tollway.events.outbox import EVENT_TYPES, Outbox, Subscription

__all__ = ["EVENT_TYPES", "Outbox", "Subscription"]
