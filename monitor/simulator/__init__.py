"""A faithful stand-in for the CodeArts Build API, for tests and the demo."""

from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.server import SimClock, Simulator, serve

__all__ = ["Fault", "FaultPlan", "SimClock", "Simulator", "serve"]
