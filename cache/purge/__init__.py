"""Purging: the index from an original to every entry made from it, and the counter that tells processes."""
