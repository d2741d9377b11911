"""Listeners that turn the watchlist's events into exported data, and the per-record renderer."""
