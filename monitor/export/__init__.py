"""What the outside world sees: metrics, HTTP endpoints, log events."""
