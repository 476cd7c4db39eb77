"""What the reporting of one process shares: clients, state writers, the heartbeat, the
candidates of cache checks and the log shipping."""

from __future__ import annotations

from dataclasses import dataclass, field

from runwright_cloud.connection import ClientPool
from runwright_cloud.heartbeat import Heartbeat
from runwright_cloud.log_shipping import LogShipping
from runwright_cloud.reporting.cached import CachedStates
from runwright_cloud.writer import WriterPool


@dataclass
class Services:
    """Owned by the process's cloud backend; every flow and task run of the process uses it."""

    clients: ClientPool = field(default_factory=ClientPool)
    writers: WriterPool = field(default_factory=WriterPool)
    heartbeat: Heartbeat = field(default_factory=Heartbeat)
    cached: CachedStates = field(default_factory=CachedStates)
    logs: LogShipping = field(init=False)

    def __post_init__(self) -> None:
        self.logs = LogShipping(self.clients)
