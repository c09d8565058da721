"""Usage reports: every figure derived from the immutable usage records (through the daily rollup)."""
