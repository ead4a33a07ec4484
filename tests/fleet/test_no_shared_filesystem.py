"""A fleet whose machines share no filesystem: only Redis and an S3-compatible checkpoint store connect them.

The producer and each GPU worker run in working and temporary directories of their own, each with its own copy of
the settings; the checkpoint store is a bucket on a moto S3 server (standing in for MinIO or a cloud bucket). The
producer's inputs directory is deleted as soon as the job is submitted, the owner of the job is killed with SIGKILL
mid-run, and the job still completes on the other worker, with MP2 (exported by the producer, on its side, from
the result checkpoints) identical to a local run.
"""

from __future__ import annotations

import json
import shutil

import pytest

from simfleet.producer.fleet.client import Fleet
from simfleet.shared.messages import to_wire
from simfleet.shared.settings import CONFIG_ENV, ROLE_ENV, load_settings
from tests.conftest import needs_moto, s3_url

from .conftest import Worker, settings_text
from .lifecycle_helpers import assert_mp2_is_the_local_runs, make_inputs, wait_for_stage


@pytest.mark.death
@needs_moto
def test_a_job_completes_across_machines_that_share_no_directory(redis_server, s3_endpoint, s3_bucket, tmp_path,
                                                                 monkeypatch):  # fmt: skip
    store = s3_url(s3_endpoint, s3_bucket, "fleet/checkpoints")
    homes = {name: tmp_path / name for name in ("producer", "machine-a", "machine-b")}
    for home in homes.values():
        home.mkdir()
        (home / "fleet.yaml").write_text(settings_text(redis_server, home, checkpoint_url=store)
                                         .replace(str(home / "clickhouse"), "clickhouse"))  # fmt: skip
    monkeypatch.chdir(homes["producer"])
    monkeypatch.setenv(CONFIG_ENV, str(homes["producer"] / "fleet.yaml"))
    workers = []
    with Fleet(load_settings(homes["producer"] / "fleet.yaml")) as fleet:
        try:
            for name in ("machine-a", "machine-b"):
                settings = load_settings(homes[name] / "fleet.yaml")
                worker = Worker(settings, homes[name] / "worker.log", 1, {ROLE_ENV: "gpu"}, "gpu", home=homes[name])
                workers.append(worker)
                worker.wait_ready(fleet)
            inputs = make_inputs(homes["producer"] / "inputs", 2500, 1095, seed=3)
            job = fleet.run_lifecycle(inputs=inputs, chunk_days=365, sink="none")
            shutil.rmtree(inputs)  # the producer keeps nothing the workers could need
            wire = json.dumps(to_wire(job.record().spec))
            assert str(tmp_path) not in wire and '"kind": "store"' in wire  # no path travels
            wait_for_stage(fleet, job.id, 3)
            owner = job.record().owner
            victim, survivor = (workers[0], workers[1]) if owner == workers[0].name else (workers[1], workers[0])
            victim.kill()
            summary = job.wait(timeout=240)
            assert summary.worker == survivor.name and summary.restores >= 1 and summary.epoch == 1
            out = homes["producer"] / "out"
            job.export(out)
        finally:
            for worker in workers:
                worker.discard()
    assert_mp2_is_the_local_runs(out, make_inputs(tmp_path / "same-inputs", 2500, 1095, seed=3))
    blobs = fleet.checkpoints().store.keys(f"{job.id}/")
    assert blobs and any("environment" in key for key in blobs)
    for name in ("machine-a", "machine-b"):
        left = [p for p in homes[name].rglob("*") if p.is_file() and job.id in str(p)]
        assert left == [], f"{name} kept files of the job: {left}"
