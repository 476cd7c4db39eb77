"""Wake-ups: tell the requests waiting in this process (agents' long polls, event streams)
that something of a tenant changed, so they look again at once instead of on a timer.

A sync route (in the threadpool) or a background thread calls :meth:`Wakeups.notify`; an
async waiter calls :meth:`Wakeups.wait`, which returns ``True`` when notified and ``False``
when ``timeout`` passed. Each notify wakes every waiter of that tenant once; a waiter checks
the database after waking, so a notify that races a waiter's check is never lost as long as
the waiter takes its :meth:`Wakeups.generation` before it checks.

This wakes waiters of *this* server process only; several server processes on one database
also look again every ``fallback_seconds`` (see the callers), so no wake-up is ever lost,
only later.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict


class Wakeups:
    """Per-tenant generation counters and the futures of the waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generation: dict[str, int] = defaultdict(int)
        self._waiters: dict[str, list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = defaultdict(list)

    def generation(self, tenant_id: str) -> int:
        """The tenant's current generation: take it before checking, pass it to :meth:`wait`."""
        with self._lock:
            return self._generation[tenant_id]

    def notify(self, tenant_id: str) -> None:
        """Wake every waiter of ``tenant_id``; safe from any thread."""
        with self._lock:
            self._generation[tenant_id] += 1
            waiters = self._waiters.pop(tenant_id, [])
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    def notify_all(self) -> None:
        """Wake every waiter of every tenant (the sweeper moved runs of unknown tenants)."""
        with self._lock:
            tenants = list(self._waiters)
        for tenant_id in tenants:
            self.notify(tenant_id)

    async def wait(self, tenant_id: str, seen: int, timeout: float) -> bool:
        """Wait until the tenant's generation moves past ``seen`` or ``timeout`` passes."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._generation[tenant_id] != seen:
                return True
            self._waiters[tenant_id].append((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except TimeoutError:
            return False
        finally:
            with self._lock:
                entries = self._waiters.get(tenant_id)
                if entries is not None:
                    entries[:] = [entry for entry in entries if entry[1] is not future]


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
