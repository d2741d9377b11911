"""Deciding when to poll what, and what changed between two snapshots."""
