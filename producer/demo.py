"""``make demo``: the main jobs end to end on this machine, through the real fleet.

It starts the local fleet (a Redis server, a CPU worker with one process per core, a GPU-role worker running the
numpy backend, Flower), runs the synthetic 279-airframe fleet over 3,650 days as a lifecycle job through the four
stage queues (MP2 to ClickHouse, chDB by default) and prints its summary, timings and a BI query on its MP2, then a
small ensemble of that fleet run here (4 plan variants x 3 replications over 5 years, shortfall side by side); then
runs the mixed workload with 8 replications through the queues with a progress bar, the deep-research SLA search on the
fleet (each probe's replications in parallel, each a decision with 95% confidence), the NPU slots deep-research needs
at its load (a capacity search) and a small rate sweep, prints the tables, writes the results (JSON,
CSV) and plots (PNG) under ``runs/demo``, writes the study to ClickHouse and prints one BI query's answer, and stops
the fleet, unless ``--keep`` (``make demo KEEP=1``) leaves it up to be looked at in Flower. A fleet that was already up
is used and left running.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from simfleet.producer.capacity import CapacityResult, search_capacity
from simfleet.producer.charts import plot_sweep_latency, plot_utilisation_heatmap
from simfleet.producer.cli.des_common import rate_label
from simfleet.producer.cli.des_search import write_sla_outputs
from simfleet.producer.cli.lifecycle_run import print_summary
from simfleet.producer.fleet.client import Fleet, StudyProgress
from simfleet.producer.progress import ProgressBar, StepProgress
from simfleet.producer.rate_sweep import SweepResult, sweep_rates
from simfleet.producer.report import capacity_table, sla_table, study_table, sweep_table
from simfleet.producer.sla import SlaResult, search_sla
from simfleet.shared.errors import FleetError
from simfleet.shared.messages import to_wire
from simfleet.shared.messages.des import ReplicationSummary, StudyAggregate
from simfleet.shared.settings import Settings, load_settings
from simfleet.worker.des.scenario import load_scenario

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "config" / "scenarios"
OUT = ROOT / "runs" / "demo"


def _bar_for(bar: ProgressBar) -> Any:
    def show(progress: StudyProgress) -> None:
        bar.update(progress.percent, f"{progress.done}/{progress.total} replications done")

    return show


def _write_outputs(study: StudyAggregate, sla: SlaResult, sweep: SweepResult) -> list[Path]:
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "mixed_workload.json").write_text(json.dumps(to_wire(study), indent=2))
    sweep.write_json(OUT / "mixed_workload_sweep.json")
    sweep.write_csv(OUT / "mixed_workload_sweep.csv")
    return [
        OUT / "mixed_workload.json",
        *write_sla_outputs(sla, OUT / "deep_research_sla"),
        OUT / "mixed_workload_sweep.json",
        OUT / "mixed_workload_sweep.csv",
        plot_sweep_latency(sweep, OUT / "mixed_workload_latency_vs_rate.png", metric="p95"),
        plot_utilisation_heatmap(sweep, OUT / "mixed_workload_utilisation.png"),
    ]


def _to_clickhouse(
    dsn: str, study_id: str, summaries: list[ReplicationSummary], answer: StudyAggregate, scenario: Any
) -> None:
    """Write the study to ClickHouse (chDB by default) and answer one BI question from it."""
    from simfleet.shared.clickhouse.des import export_des_study
    from simfleet.shared.clickhouse.migrations import open_db

    rates = {name: rt.rate_per_min for name, rt in scenario.request_types.items()}
    with open_db(dsn) as ch:
        export_des_study(ch, study_id, summaries, answer, rates)
        rows = ch.rows(
            f"SELECT name, round(mean, 2), round(ci95, 2), round(merged, 2) FROM {ch.database}.des_aggregates "
            f"WHERE study_id = '{study_id}' AND scope = 'type' AND figure = 'p95_s' ORDER BY name"
        )
        print(f"\n== study written to ClickHouse ({ch.dsn.redacted}); BI query: p95 latency per request type")
        for name, mean, ci95, merged in rows:
            name = "(all types)" if name == "(all)" else name
            print(f"   {name:<18} p95 {mean} s ± {ci95} (merged sketches {merged} s)")


def _lifecycle_job(fleet: Fleet, dsn: str) -> None:
    """The synthetic reference fleet (279 airframes, 10 years) through the four stage queues, MP2 to ClickHouse."""
    from simfleet.worker.lifecycle.inputs import write_inputs
    from simfleet.worker.lifecycle.synth import synthesize

    inputs = OUT / "lifecycle_inputs"
    if not (inputs / "meta.yaml").exists():
        write_inputs(synthesize(279, 3650, seed=1), inputs, "parquet")
    print(f"== lifecycle job: 279 airframes x 3,650 days ({inputs.relative_to(ROOT)}) through the four stage queues",
          flush=True)  # fmt: skip
    bar = ProgressBar(sys.stdout)
    job = fleet.run_lifecycle(inputs=inputs, chunk_days=365)  # MP2 to the workers' ClickHouse (the same chDB here)

    def show(progress: Any) -> None:
        bar.update(progress.percent, progress.label)

    summary = job.wait(timeout=600, on_progress=show)
    bar.close()
    print(f"job {job.id} on {summary.worker}: {summary.end_to_end_s:.2f} s end to end")
    print_summary(summary)
    from simfleet.shared.clickhouse.client import ClickHouse

    with ClickHouse(dsn) as ch:
        rows = ch.rows(
            "SELECT toYear(date) AS year, round(avg(ops), 1), round(avg(target), 1), sum(short) FROM ("
            "SELECT date, sum(ops_current) AS ops, sum(ops_target) AS target, countIf(shortfall > 0) AS short "
            f"FROM {ch.database}.mp2_daily WHERE job_id = '{job.id}' GROUP BY date) GROUP BY year ORDER BY year"
        )
    print("BI query on MP2 in ClickHouse: airframes in operation per day (both types), by year")
    for year, ops, target, short in rows:
        print(f"   {year}: {ops} in operation on average against a target of {target}; {short} type-days short")
    print()


ENSEMBLE_DAYS = 3650
"""The demo's ensemble runs the reference fleet's ten years (about half a second on the numba backend)."""


def demo_ensemble() -> Any:
    """The demo's ensemble: four plan variants x 3 replications with a small unplanned-removal hazard."""
    from simfleet.shared.messages.plan import Change, Ensemble, Maintenance, Variant

    hazard = {t: Maintenance(removal_hazard=0.0005) for t in ("mi8", "mi17")}
    slots = {t: Maintenance(repair_slots=10, removal_hazard=0.0005) for t in ("mi8", "mi17")}
    return Ensemble(
        variants=[Variant(name="base"), Variant(name="targets +10%", targets=[Change(factor=1.1)]),
                  Variant(name="repairs +30 days", repair_time=[Change(offset=30)]),
                  Variant(name="10 repair slots per type", maintenance=slots)],
        replications=3, seed=1, maintenance=hazard)  # fmt: skip


def lifecycle_ensemble(inputs: Path, days: int = ENSEMBLE_DAYS) -> str:
    """Run :func:`demo_ensemble` locally (numba backend) over ``inputs``; the variants' shortfall side by side."""
    from simfleet.producer.report import ensemble_shortfall_table
    from simfleet.worker.lifecycle.inputs import load_inputs
    from simfleet.worker.lifecycle.run import run_local

    fleet = load_inputs(inputs)
    days = min(days, fleet.days)
    ensemble = demo_ensemble()
    started = time.perf_counter()
    report = run_local(fleet, days=days, log="aggregates", backend="numba", ensemble=ensemble)
    seconds = time.perf_counter() - started
    head = (f"== lifecycle ensemble, run here: {len(ensemble.variants)} plan variants x {ensemble.replications} "
            f"replications (removal hazard 0.0005 per day in operation) of {report.airframes} airframes x "
            f"{days:,} days, one numba run: {seconds:.2f} s")  # fmt: skip
    return head + "\n" + ensemble_shortfall_table(report.members, report.days)


def _fleet_command(command: str) -> bool:
    """Run ``simfleet fleet <command>`` as an operator would (a process of its own); whether it started a fleet.

    The demo is a producer: it starts and stops the local fleet through the operators' command, not by importing
    the worker side. A fleet already up is used and left running.
    """
    done = subprocess.run([sys.executable, "-m", "simfleet.producer.cli", "fleet", command],
                          capture_output=True, text=True, check=False)  # fmt: skip
    for line in done.stdout.splitlines():
        print(f"   {line.strip()}")
    if done.returncode != 0:
        if command == "up" and "already up" in done.stderr:
            print("   a local fleet is already up: using it")
            return False
        raise FleetError(f"simfleet fleet {command} failed: {done.stderr.strip()}")
    return True


def _des_study(fleet: Fleet) -> tuple[Any, StudyAggregate, Any]:
    """The mixed workload, 8 replications through the des.run queue: the study, its answer and its scenario."""
    print("== DES study: mixed_workload.yaml, 8 replications through the des.run queue", flush=True)
    bar = ProgressBar(sys.stdout)
    mixed = load_scenario(SCENARIOS / "mixed_workload.yaml")
    study = fleet.run_des(mixed, replications=8)
    try:
        answer = study.wait(timeout=600, on_progress=_bar_for(bar))
    finally:
        bar.close()
    print(f"study {study.id}\n")
    print(study_table(answer), flush=True)
    return study, answer, mixed


def _sla_search(fleet: Fleet) -> SlaResult:
    """The deep-research SLA search, each probe's replications in parallel on the fleet."""
    deep = load_scenario(SCENARIOS / "deep_research_sla.yaml")
    assert deep.sla is not None
    spec = deep.sla
    print(f"\n== DES SLA search on the fleet: largest {spec.request_type} rate with {spec.metric} latency "
          f"< {spec.threshold_s:g} s", flush=True)  # fmt: skip
    progress = StepProgress(None, stream=sys.stdout)
    try:
        evaluate = _step_evaluator(fleet, progress, rate_label(spec.request_type))
        sla = search_sla(deep, evaluate, request_type=spec.request_type,
                         metric=spec.metric, threshold_s=spec.threshold_s, replications=max(2, spec.replications),
                         max_replications=10, seed=deep.seed, rel_tol=0.05, scale=spec.scale)  # fmt: skip
    finally:
        progress.close()
    print(sla_table(sla))
    return sla


def _step_evaluator(fleet: Fleet, progress: StepProgress, name_of: Any) -> Any:
    """The fleet's evaluator, each batch of replications a step of ``progress`` named by ``name_of(scenario)``."""

    def show(study: StudyProgress) -> None:
        progress.update(study.percent / 100.0, f"{study.done}/{study.total} replications done")

    on_fleet = fleet.evaluator(on_progress=show)

    def evaluate(probe: Any, replications: int, seed: int, first: int = 0) -> list[ReplicationSummary]:
        progress.begin(name_of(probe))
        return on_fleet(probe, replications, seed, first)

    return evaluate


def _capacity_search(fleet: Fleet) -> CapacityResult:
    """How many NPU slots deep-research needs at its scenario's load, each candidate's replications on the fleet."""
    deep = load_scenario(SCENARIOS / "deep_research_sla.yaml")
    rate = sum(t.rate_per_min for t in deep.request_types.values())
    print(f"\n== DES capacity search on the fleet: NPU slots for p95 of deep-research < 30 s at {rate:g} requests/min",
          flush=True)  # fmt: skip
    progress = StepProgress(None, stream=sys.stdout)

    def npu(probe: Any) -> str:
        return f"npu at {probe.resources['npu'].capacity:g} slots"

    try:
        answer = search_capacity(deep, _step_evaluator(fleet, progress, npu), slas=["deep-research:p95<30"],
                                 resources=["npu"], replications=3, max_replications=10)  # fmt: skip
    finally:
        progress.close()
    print(capacity_table(answer))
    return answer


def _sweep(fleet: Fleet, mixed: Any) -> SweepResult:
    """The mixed workload at three rates of the whole mix, 4 replications each."""
    rates = [50.0, 100.0, 130.0]
    print(f"\n== rate sweep on the fleet: mixed workload at {', '.join(f'{r:g}' for r in rates)} requests/min "
          "(the whole mix at fixed shares), 4 replications each", flush=True)  # fmt: skip
    progress = StepProgress(len(rates), stream=sys.stdout)
    try:
        sweep = sweep_rates(
            mixed, rates, _step_evaluator(fleet, progress, rate_label(None)), replications=4, seed=mixed.seed
        )
    finally:
        progress.close()
    print(sweep_table(sweep, "p95"))
    return sweep


def _kept(settings: Settings) -> None:
    """Where to look at the fleet left running, and how to stop it."""
    from simfleet.shared.local_secrets import secrets_path

    flower = settings.flower
    print("\n== the local fleet stays up (--keep)")
    print(f"   Flower: http://{flower.address}:{flower.port} (user {flower.user}; the password is in "
          f"{secrets_path(settings)}, readable only by you, unless the settings give it)")  # fmt: skip
    print(f"   logs: {settings.local_fleet.run_dir}/logs/ (one file per process)")
    print("   status: .venv/bin/simfleet fleet status")
    print("   stop it: .venv/bin/simfleet fleet down")


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m simfleet.producer.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true",
                        help="leave the local fleet up at the end (Flower and the logs can be looked at)")  # fmt: skip
    args = parser.parse_args(argv)
    started = time.perf_counter()
    print("== starting the local fleet (Redis, CPU worker, GPU-role worker, Flower)", flush=True)
    owned = _fleet_command("up")
    print()
    settings = load_settings()  # after 'up': a fleet's first start generates its passwords
    fleet = Fleet.from_settings(settings)
    try:
        _lifecycle_job(fleet, settings.clickhouse_dsn)
        print(lifecycle_ensemble(OUT / "lifecycle_inputs"), end="\n\n", flush=True)
        des_started = time.perf_counter()
        study, answer, mixed = _des_study(fleet)
        sla = _sla_search(fleet)
        capacity = _capacity_search(fleet)
        sweep = _sweep(fleet, mixed)
        des_s = time.perf_counter() - des_started
        print(f"\nDES on the fleet (study, SLA search, capacity search, sweep): {des_s:.1f} s")
        print("\n== results written")
        for path in _write_outputs(answer, sla, sweep):
            print(f"   {path.relative_to(ROOT)}")
        summaries = study.summaries(timeout=60)
        _to_clickhouse(settings.clickhouse_dsn, study.id, summaries, answer, mixed)
    finally:
        fleet.close()
        if owned and not args.keep:
            print("\n== stopping the local fleet", flush=True)
            _fleet_command("down")
    if args.keep:
        _kept(settings)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s")
    return 0 if sla.converged and capacity.answer is not None else 1


if __name__ == "__main__":
    sys.exit(main())
