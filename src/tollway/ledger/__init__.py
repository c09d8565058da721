"""The append-only ledger: immutable entries chained by hash, and usage records."""

from tollway.ledger.chain import GENESIS, Draft, Entry, Head, KeyHead, chain
from tollway.ledger.store import Balance, Ledger, LedgerWriter, UsageRecord

__all__ = [
    "GENESIS",
    "Balance",
    "Draft",
    "Entry",
    "Head",
    "KeyHead",
    "Ledger",
    "LedgerWriter",
    "UsageRecord",
    "chain",
]
