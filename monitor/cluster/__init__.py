"""More than one replica on one Redis: who is alive, who polls what, one shared API budget.

`Coordinator` keeps this replica's heartbeat, the live members, a lease with a
fencing token for every record this replica owns (rendezvous hashing over the
live members), and the leader lease for job discovery. `ClusterGate` is the
rate gate of the whole cluster. Both talk to Redis through Lua scripts, so each
step that must be atomic is one round trip.
"""

from monitor.cluster.coordinator import ClusterUnavailable, Coordinator, RedisObserver, owner_of
from monitor.cluster.ratelimit import ClusterGate

__all__ = ["ClusterGate", "ClusterUnavailable", "Coordinator", "RedisObserver", "owner_of"]
