"""Resources of the DES engine: processor-shared rate resources and FIFO space resources.

Rate resources use the virtual-clock technique so that every join and every completion costs O(log n) in the number
of active tools. The virtual clock ``vclock`` advances at the per-unit-weight service rate ``vrate`` =
min(per_tool_cap, capacity / Σ weights of the consumers). A consumer that joins with work w and weight g at virtual
time V0 is done when the clock reaches V0 + w / g, so one heap of virtual finish values gives the next completion;
its real time is t_last + (min finish − V) / vrate. With all weights 1 this is exactly the model's min(cap, C/N).
With weights, ``per_tool_cap`` is read per unit of weight (a tool of weight 2 may use twice the cap): that is the
one reading that keeps a single virtual clock exact.

Both kinds keep time integrals (busy work, consumers, waiting tools) that the engine snapshots at the start and end
of the measurement window; every change of state first brings the integrals up to date with :meth:`advance`.
"""

from __future__ import annotations

import math
from collections import deque
from heapq import heappop, heappush
from typing import Any

INF = math.inf


class RateResource:
    """A capacity shared by processor sharing, with optional per-tool cap and FIFO admission limit."""

    __slots__ = (
        "busy_int",
        "cap",
        "capacity",
        "heap",
        "index",
        "max_active",
        "max_n",
        "max_q",
        "n",
        "n_int",
        "name",
        "next_times",
        "q_int",
        "queue",
        "t_last",
        "vclock",
        "vrate",
        "wsum",
    )

    def __init__(
        self,
        index: int,
        name: str,
        capacity: float,
        per_tool_cap: float | None,
        max_active: int | None,
        next_times: list[float],
    ) -> None:
        self.index = index
        self.name = name
        self.capacity = capacity
        self.cap = INF if per_tool_cap is None else per_tool_cap
        self.max_active = max_active if max_active is not None else 1 << 62
        self.next_times = next_times
        self.vclock = 0.0
        self.t_last = 0.0
        self.wsum = 0.0
        self.n = 0
        self.vrate = 0.0
        # (virtual finish, sequence, tool, weight); the sequence makes ties deterministic and never compares tools.
        self.heap: list[tuple[float, int, Any, float]] = []
        self.queue: deque[tuple[Any, float, float, int]] = deque()
        self.busy_int = 0.0
        self.n_int = 0.0
        self.q_int = 0.0
        self.max_n = 0
        self.max_q = 0

    def advance(self, now: float) -> None:
        """Bring the virtual clock and the time integrals up to ``now``."""
        dt = now - self.t_last
        if dt > 0.0:
            if self.n:
                self.vclock += self.vrate * dt
                self.busy_int += self.vrate * self.wsum * dt
                self.n_int += self.n * dt
            if self.queue:
                self.q_int += len(self.queue) * dt
        self.t_last = now

    def join(self, tool: Any, work: float, weight: float, seq: int, now: float) -> None:
        """A tool starts needing ``work`` units here; it waits FIFO if ``max_active`` consumers are busy."""
        # advance() and the rescheduling are inlined here and in complete(): these run once per tool part and
        # resource, the hottest path of the engine.
        n = self.n
        dt = now - self.t_last
        if dt > 0.0:
            if n:
                self.vclock += self.vrate * dt
                self.busy_int += self.vrate * self.wsum * dt
                self.n_int += n * dt
            if self.queue:
                self.q_int += len(self.queue) * dt
        self.t_last = now
        if n >= self.max_active:
            self.queue.append((tool, work, weight, seq))
            if len(self.queue) > self.max_q:
                self.max_q = len(self.queue)
            return
        heap = self.heap
        heappush(heap, (self.vclock + work / weight, seq, tool, weight))
        n += 1
        self.n = n
        self.wsum += weight
        if n > self.max_n:
            self.max_n = n
        vrate = self.capacity / self.wsum
        if vrate > self.cap:
            vrate = self.cap
        self.vrate = vrate
        self.next_times[self.index] = now + (heap[0][0] - self.vclock) / vrate

    def complete(self, now: float) -> list[Any]:
        """Finish every consumer whose virtual finish has been reached at ``now``; return their tools."""
        n = self.n
        dt = now - self.t_last
        if dt > 0.0:
            self.vclock += self.vrate * dt
            self.busy_int += self.vrate * self.wsum * dt
            self.n_int += n * dt
            if self.queue:
                self.q_int += len(self.queue) * dt
        self.t_last = now
        heap = self.heap
        vfinish, _, tool, weight = heappop(heap)
        # Snap the clock to the finish value: the real-time prediction may be off by rounding, the order is not.
        vclock = self.vclock
        if vfinish > vclock:
            vclock = self.vclock = vfinish
        done = [tool]
        n -= 1
        wsum = self.wsum - weight
        while heap and heap[0][0] <= vclock:
            _, _, tool, weight = heappop(heap)
            done.append(tool)
            n -= 1
            wsum -= weight
        queue = self.queue
        if queue:
            while queue and n < self.max_active:
                waiting, work, weight, seq = queue.popleft()
                heappush(heap, (vclock + work / weight, seq, waiting, weight))
                n += 1
                wsum += weight
            if n > self.max_n:
                self.max_n = n
        self.n = n
        if n:
            self.wsum = wsum
            vrate = self.capacity / wsum
            if vrate > self.cap:
                vrate = self.cap
            self.vrate = vrate
            self.next_times[self.index] = now + (heap[0][0] - vclock) / vrate
        else:
            self.wsum = 0.0
            self.vrate = 0.0
            self.next_times[self.index] = INF
        return done

    def reset_maxima(self) -> None:
        """Start measuring maxima afresh (at the end of the warmup)."""
        self.max_n = self.n
        self.max_q = len(self.queue)

    def integrals(self) -> tuple[float, float, float]:
        """The (busy work, consumer-seconds, waiting-seconds) integrals so far."""
        return (self.busy_int, self.n_int, self.q_int)


class SpaceResource:
    """Space (memory, slots) held by a tool for its whole run; waiting tools are admitted strictly FIFO."""

    __slots__ = ("capacity", "index", "max_q", "max_used", "name", "q_int", "queue", "t_last", "used", "used_int")

    def __init__(self, index: int, name: str, capacity: float) -> None:
        self.index = index
        self.name = name
        self.capacity = capacity
        self.used = 0.0
        self.queue: deque[tuple[Any, float]] = deque()
        self.t_last = 0.0
        self.used_int = 0.0
        self.q_int = 0.0
        self.max_used = 0.0
        self.max_q = 0

    def advance(self, now: float) -> None:
        """Bring the time integrals up to ``now``."""
        dt = now - self.t_last
        if dt > 0.0:
            self.used_int += self.used * dt
            self.q_int += len(self.queue) * dt
        self.t_last = now

    def acquire(self, tool: Any, amount: float, now: float) -> bool:
        """Take ``amount`` for ``tool`` if it fits and nobody is waiting; otherwise queue it and return False."""
        self.advance(now)
        if not self.queue and self.used + amount <= self.capacity:
            self.used += amount
            if self.used > self.max_used:
                self.max_used = self.used
            return True
        self.queue.append((tool, amount))
        if len(self.queue) > self.max_q:
            self.max_q = len(self.queue)
        return False

    def release(self, amount: float, now: float) -> list[Any]:
        """Give ``amount`` back and return the waiting tools now admitted, in FIFO order."""
        self.advance(now)
        self.used -= amount
        if self.used < 1e-12:
            self.used = 0.0
        admitted = []
        queue = self.queue
        while queue and self.used + queue[0][1] <= self.capacity:
            tool, need = queue.popleft()
            self.used += need
            admitted.append(tool)
        if self.used > self.max_used:
            self.max_used = self.used
        return admitted

    def reset_maxima(self) -> None:
        """Start measuring maxima afresh (at the end of the warmup)."""
        self.max_used = self.used
        self.max_q = len(self.queue)

    def integrals(self) -> tuple[float, float, float]:
        """The (space-seconds held, 0, waiting-seconds) integrals so far."""
        return (self.used_int, 0.0, self.q_int)
