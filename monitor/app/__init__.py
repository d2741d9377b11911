"""The composition root: read the Settings, build every room, connect them explicitly."""

from monitor.app.auth import auth_from_settings
from monitor.app.daemon import Daemon

__all__ = ["Daemon", "auth_from_settings"]
