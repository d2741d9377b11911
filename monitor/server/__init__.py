"""aiohttp: /metrics, /healthz, /readyz, and the admin API as a sub-application (admin/)."""
