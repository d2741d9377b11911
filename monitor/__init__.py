"""codearts-stage-monitor: Prometheus metrics and structured logs for CodeArts Build stages."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("codearts-stage-monitor")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
