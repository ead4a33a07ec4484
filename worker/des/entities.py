"""What the engine keeps of each request, attempt, tool template, DAG and request type while it runs.

Plain slotted classes with no behaviour beyond their own bookkeeping: the event loop in
:mod:`simfleet.worker.des.engine` does the work, and :mod:`simfleet.worker.des.state` saves and restores them.
"""

from __future__ import annotations

import math
from typing import Any

from simfleet.worker.des.scenario import FailurePolicy, Scenario
from simfleet.worker.des.streams import UniformStream, WorkStream


class Request:
    """A request in flight.

    Its DAG, how many predecessors each node still waits for, its attributes, and (when the scenario can fail) its
    live attempts; ``counted`` when it arrived in the measurement window.
    """

    __slots__ = ("arrival", "attrs", "counted", "dag", "dead", "left", "rid", "rtype", "spec", "tools", "waiting",
                 "works")  # fmt: skip

    def __init__(self, rid: int, spec: TypeSpec, dag: Dag, arrival: float, counted: bool) -> None:
        self.rid = rid
        self.spec = spec
        self.rtype = spec.index
        self.dag = dag
        self.arrival = arrival
        self.waiting = list(dag.preds)
        self.left = len(dag.preds)
        self.counted = counted
        self.dead = False
        self.attrs: dict[str, float] = {}
        self.tools: dict[int, Attempt] = {}
        self.works: list[float] = []


class Tool:
    """One run of a node's tool that cannot fail or be cancelled: the template it runs and where it stands."""

    __slots__ = ("cancelled", "node", "parts", "req", "space_pos", "template")

    is_fallback = False

    def __init__(self, req: Request, node: int, template: Template) -> None:
        self.req = req
        self.node = node
        self.template = template
        self.parts = 0
        self.space_pos = 0
        self.cancelled = False


class Attempt(Tool):
    """One attempt of a node that may fail, time out or be cancelled (or whose work is observed).

    ``uid`` names it in timers and saved states; ``at`` is where it stands on each rate resource (kept by the
    resources), ``joined`` what it joined each with; ``started`` tells whether it got its space and began its work.
    """

    __slots__ = ("at", "attempt", "fails", "is_fallback", "joined", "policy", "started", "uid")

    def __init__(self, uid: int, req: Request, node: int, template: Template, policy: FailurePolicy,
                 attempt: int, is_fallback: bool) -> None:  # fmt: skip
        super().__init__(req, node, template)
        self.uid = uid
        self.policy = policy
        self.attempt = attempt
        self.is_fallback = is_fallback
        self.started = False
        self.fails = False
        self.at: dict[int, float | None] = {}
        self.joined: list[tuple[int, float]] = []


class Template:
    """A tool template as the engine uses it.

    Its rate resource indices, space holdings, ``per`` scalings, default failure policy and work stream.
    """

    __slots__ = ("index", "name", "parts", "per", "policy", "space", "stream")

    def __init__(self, index: int, name: str, parts: tuple[int, ...], space: tuple[tuple[int, float], ...],
                 per: tuple[tuple[int, str], ...], policy: FailurePolicy) -> None:  # fmt: skip
        self.index = index
        self.name = name
        self.parts = parts
        self.space = space
        self.per = per
        self.policy = policy
        self.stream: WorkStream


class Dag:
    """One DAG of a request type (the type's only one, or one of its variants)."""

    __slots__ = ("fallible", "index", "node_names", "offset", "plain", "policies", "preds", "probs", "roots", "succs",
                 "templates")  # fmt: skip

    def __init__(self, index: int, nodes: tuple[Any, ...], template_index: dict[str, int], offset: int,
                 keep_joined: bool = False) -> None:  # fmt: skip
        position = {node.name: i for i, node in enumerate(nodes)}
        self.index = index
        self.offset = offset
        self.node_names = tuple(node.name for node in nodes)
        self.templates = tuple(template_index[node.tool] for node in nodes)
        self.policies = tuple(node.policy for node in nodes)
        self.fallible = tuple(node.policy.can_fail for node in nodes)
        self.plain = tuple(node.prob == 1.0 and not node.policy.can_fail and not keep_joined for node in nodes)
        """Nodes that always run, cannot fail, and need no record of their work (``keep_joined``: the simulation
        keeps one for every attempt)."""
        self.probs = tuple(node.prob for node in nodes)
        self.preds = tuple(len(node.after) for node in nodes)
        succs: list[list[int]] = [[] for _ in nodes]
        for i, node in enumerate(nodes):
            for pred in node.after:
                succs[position[pred]].append(i)
        self.succs = tuple(tuple(s) for s in succs)
        self.roots = tuple(i for i, n in enumerate(self.preds) if n == 0)


class TypeSpec:
    """A request type as the engine uses it.

    Its DAGs with their cumulative weights, its priority and weight, its decision and attribute streams, and the
    keys of its node figures.
    """

    __slots__ = ("attr_names", "attr_stream", "cumulative", "dags", "decisions", "index", "name", "node_keys",
                 "priority", "weight")  # fmt: skip

    def __init__(self, index: int, scenario: Scenario, name: str, template_index: dict[str, int],
                 keep_joined: bool = False) -> None:  # fmt: skip
        rt = scenario.request_types[name]
        self.index = index
        self.name = name
        self.weight = rt.weight
        self.priority = rt.priority
        dags = []
        keys: list[str] = []
        for i, variant in enumerate(rt.dags()):
            dags.append(Dag(i, variant.nodes, template_index, len(keys), keep_joined))
            keys.extend(f"{variant.name}/{n.name}" if rt.variants else n.name for n in variant.nodes)
        self.dags = dags
        self.node_keys = tuple(keys)
        total = math.fsum(v.weight for v in rt.dags())
        running = 0.0
        cumulative = []
        for variant in rt.dags():
            running += variant.weight / total
            cumulative.append(running)
        self.cumulative = tuple(cumulative)
        self.attr_names = tuple(rt.attributes)
        self.attr_stream: WorkStream | None = None
        self.decisions: UniformStream

    def pick(self) -> Dag:
        """The DAG of a new request (a draw only when the type has several)."""
        if len(self.dags) == 1:
            return self.dags[0]
        u = self.decisions.draw()
        for dag, bound in zip(self.dags, self.cumulative, strict=True):
            if u < bound:
                return dag
        return self.dags[-1]
