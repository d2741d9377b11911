"""Builds as traces: every completed build sent once over OTLP/HTTP, its stages as spans.

`spans` turns a record's final snapshot into spans (pure, deterministic ids);
`exporter` is the watchlist listener that queues them, delivers them in batches
and keeps the trace outbox in the state store up to date.
"""
