"""The session registry: live jobs within a memory budget, least recently used evicted first."""

from __future__ import annotations

from simfleet.shared.messages.lifecycle import JobSpec, StoreInputs
from simfleet.worker.lifecycle.backends import get_backend
from simfleet.worker.lifecycle.environment import build_environment
from simfleet.worker.lifecycle.synth import synthesize
from simfleet.worker.sessions import Session, SessionRegistry


def session(job_id: str, aircraft: int = 40) -> Session:
    env = build_environment(synthesize(aircraft, 100, seed=1))
    backend = get_backend("numpy")
    backend.build(env)
    spec = JobSpec(job_id=job_id, inputs=StoreInputs(key="k", sha256="0"), days=100)
    return Session(job_id, 1, spec, env, backend)


def test_least_recently_used_sessions_are_evicted_when_over_budget():
    a, b, c = session("a"), session("b"), session("c")
    registry = SessionRegistry(budget_bytes=int(2.5 * a.nbytes()))
    assert registry.put(a) == [] and registry.put(b) == []
    assert registry.get("a") is a  # a is now the most recently used
    assert registry.put(c) == ["b"]
    assert registry.jobs() == ["a", "c"] and "b" not in registry


def test_the_session_just_used_stays_even_alone_over_budget():
    big = session("big", aircraft=200)
    registry = SessionRegistry(budget_bytes=1)
    assert registry.put(session("small")) == []
    assert registry.put(big) == ["small"]
    assert registry.jobs() == ["big"] and registry.nbytes() > registry.budget_bytes
    registry.drop("big")
    assert len(registry) == 0
