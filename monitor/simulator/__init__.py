"""A faithful stand-in for the CodeArts Build API, for tests and the demo."""

from monitor.simulator.faults import Fault, FaultPlan
from monitor.simulator.server import Simulator, serve
from monitor.simulator.world import SimClock

__all__ = ["Fault", "FaultPlan", "SimClock", "Simulator", "serve"]
