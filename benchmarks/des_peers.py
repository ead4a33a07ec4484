"""The strongest peers we know how to write for the DES benchmarks: SimPy with a virtual-time server, and a bare loop.

Both simulate the two workloads of ``bench_des_kernel.py`` (M/M/1 under processor sharing, and the fork-join DAG
A -> {B, C} -> D with CPU and network work on every tool; :func:`mm1_scenario` and :func:`fork_join_scenario` are the
same models as scenarios for our engines) and return ``(completed, mean latency s, standard error of
the mean s)``; the standard error comes from batch means over the latencies in completion order (:func:`batch_se`),
so a benchmark can say how far apart two independent runs of the same model may fall.

Processor sharing by virtual time: a resource of capacity ``c`` with ``n`` jobs gives each ``c / n`` work per second,
so one virtual clock (the work every present job has received) advances at ``c / n``; a job that arrives with work
``w`` when the clock reads ``v`` is done when the clock reaches ``v + w``. Jobs sit in a heap by that virtual finish;
the next completion is at ``now + (top - v) * n / c``. An event costs O(log n), and no job is touched when another
arrives or leaves (unlike a server that charges every job at every event, O(n)).

- :class:`VirtualTimePS` is that server for SimPy, as a SimPy expert would write it: ``submit(work)`` returns an event
  that fires when the work is done, and one wake-up timeout is armed for the heap's top; a change of the set arms a
  new one and the superseded timeout, which SimPy cannot cancel, is ignored when it fires. (Re-arming only when a
  new job would finish before the armed time, and re-arming on an early wake-up, measured 7-10% slower.) Requests
  are callbacks on the server's events (a fork-join stage's ``all_of`` starts the next stage), not processes: a
  process per request was about 9% slower on the fork-join.
- :func:`loop_mm1` and :func:`loop_fork_join` are the same model as a hand-written event loop in plain Python: heapq
  for each resource's jobs, the next completion of each resource kept in a local and recomputed only when its set
  changes, the next event the least of those and the next arrival, no object per request beyond a small list.

Random numbers come from :class:`random.Random` (the SimPy and loop sides of a workload draw in the same order from
the same seed, so the two follow nearly the same path; our engines use numpy's streams, so they are independent).
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable
from itertools import count
from typing import Any

import simpy

Result = tuple[int, float, float]
"""What a peer returns: (completed requests, mean latency s, standard error of that mean s)."""

BATCHES = 20
"""Batch means for the standard error: 20 batches of consecutive latencies, each far longer than the queue's memory."""


def batch_se(latencies: list[float], batches: int = BATCHES) -> float:
    """Standard error (s) of the mean of ``latencies`` (in completion order) by the method of batch means.

    Consecutive latencies of a queue are correlated, so the naive ``sd / sqrt(n)`` is far too small; the means of
    long consecutive batches are nearly independent, and their spread gives the error of the overall mean.
    """
    size = len(latencies) // batches
    if size < 2:
        return math.inf
    means = [sum(latencies[i * size : (i + 1) * size]) / size for i in range(batches)]
    centre = sum(means) / batches
    variance = sum((m - centre) ** 2 for m in means) / (batches - 1)
    return math.sqrt(variance / batches)


def summarise(latencies: list[float]) -> Result:
    """(completed, mean, standard error) of latencies in completion order."""
    return len(latencies), sum(latencies) / len(latencies), batch_se(latencies)


class VirtualTimePS:
    """A processor-sharing resource for SimPy by virtual time (see the module docstring): O(log n) per event."""

    def __init__(self, env: simpy.Environment, capacity: float) -> None:
        self.env = env
        self.capacity = capacity
        self.vclock = 0.0
        """Work (in the resource's unit) each present job has received since the resource was last empty."""
        self.last = 0.0
        """Simulated time (s) at which ``vclock`` was last brought up to date."""
        self.jobs: list[tuple[float, int, simpy.Event]] = []
        """Heap of (virtual finish, arrival order, event to fire)."""
        self.order = count()
        self.timer: simpy.Event | None = None
        """The wake-up timeout for the heap's top; any other timeout that fires was superseded."""

    def submit(self, work: float) -> simpy.Event:
        """Start a job of ``work`` units; the returned event fires when it is done."""
        env, jobs = self.env, self.jobs
        now = env.now
        if jobs:
            self.vclock += (now - self.last) * self.capacity / len(jobs)
        self.last = now
        done = env.event()
        heapq.heappush(jobs, (self.vclock + work, next(self.order), done))
        self._arm()
        return done

    def _arm(self) -> None:
        jobs = self.jobs
        delay = (jobs[0][0] - self.vclock) * len(jobs) / self.capacity
        timer = self.timer = self.env.timeout(delay if delay > 0.0 else 0.0)
        timer.callbacks.append(self._wake)

    def _wake(self, timer: simpy.Event) -> None:
        if timer is not self.timer:
            return
        jobs = self.jobs
        finish, _, done = heapq.heappop(jobs)
        self.vclock, self.last = finish, self.env.now
        done.succeed()
        while jobs and jobs[0][0] <= finish:
            heapq.heappop(jobs)[2].succeed()
        if jobs:
            self._arm()
        else:
            self.timer = None


def simpy_mm1(requests: int, lam: float, mean_work: float, seed: int) -> Result:
    """M/M/1-PS in SimPy with :class:`VirtualTimePS`: ``requests`` arrivals at ``lam``/s, exponential work."""
    env = simpy.Environment()
    server = VirtualTimePS(env, 1.0)
    expo = random.Random(seed).expovariate
    latencies: list[float] = []
    record = latencies.append

    def finished(arrival: float) -> Callable[[simpy.Event], None]:
        return lambda _: record(env.now - arrival)

    def source() -> Any:
        for _ in range(requests):
            yield env.timeout(expo(lam))
            server.submit(expo(1.0 / mean_work)).callbacks.append(finished(env.now))

    env.process(source())
    env.run()
    return summarise(latencies)


def simpy_fork_join(requests: int, lam: float, cpu_mean: float, net_mean: float, seed: int) -> Result:
    """A -> {B, C} -> D in SimPy, each tool on a CPU and a network :class:`VirtualTimePS`, stages by callbacks."""
    env = simpy.Environment()
    cpu, net = VirtualTimePS(env, 1.0), VirtualTimePS(env, 1.0)
    expo = random.Random(seed).expovariate
    cpu_rate, net_rate = 1.0 / cpu_mean, 1.0 / net_mean
    latencies: list[float] = []
    record = latencies.append
    all_of = env.all_of

    def start(arrival: float) -> None:
        # Each stage's all_of calls the next stage back: no process per request (SimPy's processes cost ~10% more).
        def d_done(_: simpy.Event) -> None:
            record(env.now - arrival)

        def bc_done(_: simpy.Event) -> None:
            all_of([cpu.submit(expo(cpu_rate)), net.submit(expo(net_rate))]).callbacks.append(d_done)

        def a_done(_: simpy.Event) -> None:
            all_of([cpu.submit(expo(cpu_rate)), net.submit(expo(net_rate)),  # B and C: D waits for all four parts
                    cpu.submit(expo(cpu_rate)), net.submit(expo(net_rate))]).callbacks.append(bc_done)  # fmt: skip

        all_of([cpu.submit(expo(cpu_rate)), net.submit(expo(net_rate))]).callbacks.append(a_done)

    def source() -> Any:
        for _ in range(requests):
            yield env.timeout(expo(lam))
            start(env.now)

    env.process(source())
    env.run()
    return summarise(latencies)


def loop_mm1(requests: int, lam: float, mean_work: float, seed: int) -> Result:
    """M/M/1-PS as a bare loop: one heap of (virtual finish, arrival time); the next event is an arrival or the top."""
    expo = random.Random(seed).expovariate
    push, pop = heapq.heappush, heapq.heappop
    mu = 1.0 / mean_work
    jobs: list[tuple[float, float]] = []
    latencies: list[float] = []
    record = latencies.append
    vclock = now = 0.0
    arrival = expo(lam)
    left = requests - 1
    done_at = math.inf  # next completion (s)
    while True:
        if arrival <= done_at:
            if arrival == math.inf:
                break
            n = len(jobs)
            if n:
                vclock += (arrival - now) / n
            now = arrival
            push(jobs, (vclock + expo(mu), now))
            done_at = now + (jobs[0][0] - vclock) * (n + 1)
            if left:
                left -= 1
                arrival = now + expo(lam)
            else:
                arrival = math.inf
        else:
            now = done_at
            vclock, started = pop(jobs)
            record(now - started)
            done_at = now + (jobs[0][0] - vclock) * len(jobs) if jobs else math.inf
    return summarise(latencies)


def loop_fork_join(requests: int, lam: float, cpu_mean: float, net_mean: float, seed: int) -> Result:
    """A -> {B, C} -> D as a bare loop over two PS resources of capacity 1 (CPU and network).

    A request is ``[arrival s, parts left in its stage, stage]``; its stage's parts (one CPU and one network job per
    tool; B and C together, since D waits for both) sit in the two heaps as (virtual finish, request). When the last
    part of a stage finishes, the next stage's parts are pushed, drawn in the SimPy side's order.
    """
    expo = random.Random(seed).expovariate
    push, pop = heapq.heappush, heapq.heappop
    inf = math.inf
    cpu_rate, net_rate = 1.0 / cpu_mean, 1.0 / net_mean
    cpu: list[tuple[float, list[Any]]] = []
    net: list[tuple[float, list[Any]]] = []
    cpu_v = net_v = 0.0  # virtual clocks
    cpu_t = net_t = 0.0  # when each was brought up to date (s)
    cpu_next = net_next = inf  # next completion on each (s)
    latencies: list[float] = []
    record = latencies.append
    arrival = expo(lam)
    left = requests - 1
    while True:
        if arrival <= cpu_next and arrival <= net_next:
            if arrival == inf:
                break
            now = arrival
            request: list[Any] = [now, 2, 0]
            tools = 1
            arrived = True
        else:
            if cpu_next <= net_next:
                now = cpu_next
                cpu_v, request = pop(cpu)
                cpu_t = now
                cpu_next = now + (cpu[0][0] - cpu_v) * len(cpu) if cpu else inf
            else:
                now = net_next
                net_v, request = pop(net)
                net_t = now
                net_next = now + (net[0][0] - net_v) * len(net) if net else inf
            request[1] -= 1
            if request[1]:
                continue
            stage = request[2]
            if stage == 2:
                record(now - request[0])
                continue
            request[2] = stage + 1
            tools = 2 if stage == 0 else 1
            request[1] = 2 * tools
            arrived = False
        n = len(cpu)
        if n:
            cpu_v += (now - cpu_t) / n
        cpu_t = now
        n = len(net)
        if n:
            net_v += (now - net_t) / n
        net_t = now
        for _ in range(tools):
            push(cpu, (cpu_v + expo(cpu_rate), request))
            push(net, (net_v + expo(net_rate), request))
        cpu_next = now + (cpu[0][0] - cpu_v) * len(cpu)
        net_next = now + (net[0][0] - net_v) * len(net)
        if arrived:  # the next arrival is drawn after this one's parts, as the SimPy side does
            if left:
                left -= 1
                arrival = now + expo(lam)
            else:
                arrival = inf
    return summarise(latencies)


# ------------------------------------------------------------------------------- the workloads as scenarios


def mm1_scenario(requests: int, lam: float, mean_work: float) -> dict[str, Any]:
    """M/M/1-PS as a scenario: ``requests / lam`` seconds of Poisson arrivals at ``lam``/s, exponential work."""
    return {
        "name": "mm1-ps",
        "horizon_s": requests / lam,
        "resources": {"cpu": {"capacity": 1.0}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": mean_work}}}},
        "request_types": {"r": {"rate_per_min": lam * 60.0, "nodes": {"job": {"tool": "job"}}}},
    }


def fork_join_scenario(requests: int, lam: float, cpu_mean: float, net_mean: float) -> dict[str, Any]:
    """The fork-join DAG A -> {B, C} -> D as a scenario: CPU and network work on every tool, both shared."""
    work = {"cpu": {"dist": "exponential", "mean": cpu_mean}, "net": {"dist": "exponential", "mean": net_mean}}
    return {
        "name": "fork-join",
        "horizon_s": requests / lam,
        "resources": {"cpu": {"capacity": 1.0}, "net": {"capacity": 1.0}},
        "tools": {name: {"work": work} for name in "abcd"},
        "request_types": {
            "r": {
                "rate_per_min": lam * 60.0,
                "nodes": {
                    "a": {"tool": "a"},
                    "b": {"tool": "b", "after": ["a"]},
                    "c": {"tool": "c", "after": ["a"]},
                    "d": {"tool": "d", "after": ["b", "c"]},
                },
            }
        },
    }
