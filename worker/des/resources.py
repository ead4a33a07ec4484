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

Waiting tools (for a ``max_active`` slot, or for space) are admitted by their request type's priority, higher first,
then in the order they began to wait: the queues are heaps keyed by (−priority, order), which is plain FIFO when every
priority is equal. A tool that is cancelled (a timeout, its request failed) leaves at once: on a rate resource its
weight stops counting, so the other consumers speed up from that instant, and its heap entry is dropped lazily (a
cancelled tool's entries are skipped when they come to the top), which keeps a cancellation O(log n). Each tool
records where it stands on each rate resource in ``tool.at`` (its virtual finish while served, ``None`` while
waiting), so a cancellation knows what it gives back.
"""

from __future__ import annotations

import math
from heapq import heappop, heappush
from typing import Any

INF = math.inf


class RateResource:
    """A capacity shared by processor sharing, with optional per-tool cap and FIFO admission limit."""

    __slots__ = (
        "busy_int",
        "cap",
        "capacity",
        "dead_q",
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
        "track",
        "vclock",
        "vrate",
        "wasted",
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
        # (−priority, sequence, tool, work, weight): the waiting tools, by priority then in order of arrival.
        self.queue: list[tuple[int, int, Any, float, float]] = []
        self.dead_q = 0
        self.wasted = 0.0
        self.track = False
        """Whether tools may be cancelled here (the scenario can fail): only then is ``tool.at`` kept."""
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
                self.q_int += (len(self.queue) - self.dead_q) * dt
        self.t_last = now

    def join(self, tool: Any, work: float, weight: float, priority: int, seq: int, now: float) -> None:
        """A tool starts needing ``work`` units here; it waits if ``max_active`` consumers are busy."""
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
                self.q_int += (len(self.queue) - self.dead_q) * dt
        self.t_last = now
        if n >= self.max_active:
            heappush(self.queue, (-priority, seq, tool, work, weight))
            if self.track:
                tool.at[self.index] = None
            waiting = len(self.queue) - self.dead_q
            if waiting > self.max_q:
                self.max_q = waiting
            return
        heap = self.heap
        vfinish = self.vclock + work / weight
        heappush(heap, (vfinish, seq, tool, weight))
        if self.track:
            tool.at[self.index] = vfinish
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
                self.q_int += (len(self.queue) - self.dead_q) * dt
        self.t_last = now
        heap = self.heap
        index = self.index
        vfinish, _, tool, weight = heappop(heap)
        # Snap the clock to the finish value: the real-time prediction may be off by rounding, the order is not.
        vclock = self.vclock
        if vfinish > vclock:
            vclock = self.vclock = vfinish
        track = self.track
        if track:
            del tool.at[index]
        done = [tool]
        n -= 1
        wsum = self.wsum - weight
        while heap and heap[0][0] <= vclock:
            _, _, tool, weight = heappop(heap)
            if tool.cancelled:
                continue
            if track:
                del tool.at[index]
            done.append(tool)
            n -= 1
            wsum -= weight
        self.n = n
        if self.queue or not n or (track and heap[0][2].cancelled):
            self.wsum = wsum
            self._admit_and_reschedule(now)
            return done
        # The common case, inlined: nobody waits, the next finish is live.
        self.wsum = wsum
        vrate = self.capacity / wsum
        if vrate > self.cap:
            vrate = self.cap
        self.vrate = vrate
        self.next_times[index] = now + (heap[0][0] - vclock) / vrate
        return done

    def _admit_and_reschedule(self, now: float) -> None:
        """Admit waiting tools into free slots, drop cancelled entries from the top, and publish the next finish."""
        n = self.n
        wsum = self.wsum
        heap = self.heap
        vclock = self.vclock
        queue = self.queue
        if queue:
            while queue and n < self.max_active:
                _, seq, waiting, work, weight = heappop(queue)
                if waiting.cancelled:
                    self.dead_q -= 1
                    continue
                vfinish = vclock + work / weight
                heappush(heap, (vfinish, seq, waiting, weight))
                if self.track:
                    waiting.at[self.index] = vfinish
                n += 1
                wsum += weight
            if n > self.max_n:
                self.max_n = n
        while heap and heap[0][2].cancelled:
            heappop(heap)
        self.n = n
        if n:
            self.wsum = wsum
            vrate = self.capacity / wsum
            if vrate > self.cap:
                vrate = self.cap
            self.vrate = vrate
            self.next_times[self.index] = now + (heap[0][0] - vclock) / vrate
        else:
            heap.clear()
            self.wsum = 0.0
            self.vrate = 0.0
            self.next_times[self.index] = INF

    def cancel(self, tool: Any, work: float, weight: float, now: float) -> float:
        """Take ``tool`` (marked cancelled) off this resource at ``now``; return the work it had done here.

        ``work`` is what it joined with. A served tool stops counting at once (the others speed up); a waiting one
        leaves the queue; one whose work here was already done gives nothing back.
        """
        index = self.index
        if index not in tool.at:
            return work
        vfinish = tool.at.pop(index)
        self.advance(now)
        if vfinish is None:
            self.dead_q += 1
            return 0.0
        self.n -= 1
        self.wsum -= weight
        done: float = work - max(0.0, vfinish - self.vclock) * weight
        self._admit_and_reschedule(now)
        return max(0.0, done)

    def reset_maxima(self) -> None:
        """Start measuring maxima afresh (at the end of the warmup)."""
        self.max_n = self.n
        self.max_q = len(self.queue) - self.dead_q

    def integrals(self) -> tuple[float, float, float, float]:
        """The (busy work, consumer-seconds, waiting-seconds, wasted work) integrals so far."""
        return (self.busy_int, self.n_int, self.q_int, self.wasted)


class SpaceResource:
    """Space (memory, slots) held by a tool for its whole run; waiting tools are admitted by priority, then FIFO.

    Admission is head-of-line: while the first waiting tool (highest priority, earliest) does not fit, nobody behind
    it is admitted, so a large demand is never starved by small ones of its class. A newcomer goes first only when
    it fits and has a strictly higher priority than every waiting tool.
    """

    __slots__ = (
        "capacity", "dead", "index", "max_q", "max_used", "name", "order", "q_int", "queue", "t_last", "used",
        "used_int",
    )  # fmt: skip

    def __init__(self, index: int, name: str, capacity: float) -> None:
        self.index = index
        self.name = name
        self.capacity = capacity
        self.used = 0.0
        # (−priority, order, tool, amount)
        self.queue: list[tuple[int, int, Any, float]] = []
        self.order = 0
        self.dead = 0
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
            self.q_int += (len(self.queue) - self.dead) * dt
        self.t_last = now

    def _drop_dead(self) -> None:
        queue = self.queue
        while queue and queue[0][2].cancelled:
            heappop(queue)
            self.dead -= 1

    def acquire(self, tool: Any, amount: float, priority: int, now: float) -> bool:
        """Take ``amount`` for ``tool`` if it fits and no waiting tool goes first; otherwise queue it, return False."""
        self.advance(now)
        self._drop_dead()
        queue = self.queue
        if self.used + amount <= self.capacity and (not queue or -priority < queue[0][0]):
            self.used += amount
            if self.used > self.max_used:
                self.max_used = self.used
            return True
        heappush(queue, (-priority, self.order, tool, amount))
        self.order += 1
        waiting = len(queue) - self.dead
        if waiting > self.max_q:
            self.max_q = waiting
        return False

    def release(self, amount: float, now: float) -> list[Any]:
        """Give ``amount`` back and return the waiting tools now admitted, in admission order."""
        self.advance(now)
        self.used -= amount
        if self.used < 1e-12:
            self.used = 0.0
        return self.admit()

    def cancel_waiting(self, now: float) -> list[Any]:
        """A waiting tool (already marked cancelled) leaves; return the tools its leaving lets in."""
        self.advance(now)
        self.dead += 1
        return self.admit()

    def admit(self) -> list[Any]:
        """Admit waiting tools from the head while they fit."""
        admitted = []
        queue = self.queue
        self._drop_dead()
        while queue and self.used + queue[0][3] <= self.capacity:
            _, _, tool, need = heappop(queue)
            self.used += need
            admitted.append(tool)
            self._drop_dead()
        if self.used > self.max_used:
            self.max_used = self.used
        return admitted

    def reset_maxima(self) -> None:
        """Start measuring maxima afresh (at the end of the warmup)."""
        self.max_used = self.used
        self.max_q = len(self.queue) - self.dead

    def integrals(self) -> tuple[float, float, float]:
        """The (space-seconds held, 0, waiting-seconds) integrals so far."""
        return (self.used_int, 0.0, self.q_int)
