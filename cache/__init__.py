"""Disk cache tiers: bounded by size (LRU) and idle time, filled atomically, one fill per key."""
