from simfleet.producer.bottleneck import find_bottlenecks
from simfleet.producer.capacity import search_capacity
from simfleet.worker.des.runner import run_replications
from simfleet.worker.des.scenario import parse_scenario


def test_capacity_search_on_the_fleet_probes_exactly_like_the_local_search(fleet, start_worker):
    # An M/M/c station at 1.5 requests/s of unit work: 2 servers miss a mean of 1.5 s (Erlang C: 2.29 s), 3 meet it.
    scenario = parse_scenario({
        "name": "mmc", "horizon_s": 500.0,
        "resources": {"cpu": {"capacity": 4.0, "per_tool_cap": 1.0, "max_active": 4, "step": 1.0}},
        "tools": {"job": {"work": {"cpu": {"dist": "exponential", "mean": 1.0}}}},
        "request_types": {"r": {"rate_per_min": 90, "nodes": {"job": {"tool": "job"}}}},
    })  # fmt: skip
    options = {"slas": ["r:mean<1.5"], "replications": 3, "seed": 5}
    start_worker()
    on_fleet = fleet.capacity_search(scenario, **options)

    def local(probe, replications, seed, first=0):
        return run_replications(probe, replications=first + replications, seed=seed, processes=1, first=first)

    here = search_capacity(scenario, local, **options)
    assert on_fleet.answer is not None and on_fleet.answer.steps == here.answer.steps == {"cpu": 3}
    assert on_fleet.probes == here.probes


def test_a_bottleneck_study_on_real_workers_gives_the_local_answer(fleet, start_worker):
    # Two stations: a single FIFO server (the bottleneck) and a shared CPU; one more step of each, paired replications.
    scenario = parse_scenario({
        "name": "two-stations", "horizon_s": 1500.0,
        "resources": {"npu": {"capacity": 1.0, "per_tool_cap": 1.0, "max_active": 1, "step": 1.0},
                      "cpu": {"capacity": 4.0, "step": 1.0}},
        "tools": {"infer": {"work": {"npu": {"dist": "exponential", "mean": 1.0}}},
                  "prep": {"work": {"cpu": {"dist": "exponential", "mean": 0.5}}}},
        "request_types": {"r": {"rate_per_min": 45, "nodes": {"prep": {"tool": "prep"},
                                                            "infer": {"tool": "infer", "after": ["prep"]}}}},
    })  # fmt: skip
    start_worker()
    on_fleet = fleet.bottlenecks(scenario, slas=["r:mean<5"], replications=4, seed=2)

    def local(probe, replications, seed, first=0):
        return run_replications(probe, replications=first + replications, seed=seed, processes=1, first=first)

    here = find_bottlenecks(scenario, local, slas=["r:mean<5"], replications=4, seed=2)
    assert on_fleet.to_dict() == here.to_dict()
    assert on_fleet.bottleneck is not None and on_fleet.bottleneck.name == "npu"
