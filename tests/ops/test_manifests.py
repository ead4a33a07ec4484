"""ops/k8s: every manifest valid against Kubernetes' JSON schemas, and wired together as kustomize would apply it.

No cluster runs here, so the manifests are checked offline: the built-in kinds against the strict JSON schemas of
the Kubernetes API that the kubernetes-validate package ships (unknown fields refused), KEDA's two custom resources
against small schemas written from KEDA's documentation (tests/ops/schemas/). Then what a schema cannot see: every
file is in the kustomization, every Secret key and ConfigMap a pod names exists, no password is written in a
manifest or passed as an argument, every container has probes, requests and limits, selectors select, the Redis
directives match ops/redis/redis.conf, KEDA scales on the sum of every des.run priority list, and every command a
container runs is a real entry point of this project.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from simfleet.producer.cli import build_parser
from simfleet.shared.celery_app import create_app
from simfleet.shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "ops" / "k8s"
SCHEMAS = Path(__file__).resolve().parent / "schemas"
KUSTOMIZATION: dict[str, Any] = yaml.safe_load((K8S / "kustomization.yaml").read_text(encoding="utf-8"))
# The oldest Kubernetes minor release still in common support, and the newest the package ships.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.latest_version())
CUSTOM_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCHEMAS / "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): SCHEMAS / "keda-triggerauthentication-v1alpha1.json",
}
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
# Values in a manifest that would be a secret written in git: env variables by these names must come from a Secret.
SECRET_NAME = re.compile(r"PASSWORD|SECRET|BASIC_AUTH|DSN|ACCESS_KEY", re.IGNORECASE)


def load_documents() -> list[tuple[str, dict[str, Any]]]:
    documents = []
    for path in sorted(K8S.glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
                if document:
                    documents.append((path.name, document))
    return documents


DOCUMENTS = load_documents()
IDS = [f"{file}:{doc['kind']}:{doc['metadata']['name']}" for file, doc in DOCUMENTS]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [document for _, document in DOCUMENTS if document["kind"] == kind]


def named(kind: str, name: str) -> dict[str, Any]:
    (document,) = [document for document in of_kind(kind) if document["metadata"]["name"] == name]
    return document


def workloads() -> list[dict[str, Any]]:
    return [document for _, document in DOCUMENTS if document["kind"] in WORKLOAD_KINDS]


def pod_spec(workload: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = workload["spec"]["template"]["spec"]
    return spec


def containers(workload: dict[str, Any], init: bool = True) -> list[dict[str, Any]]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", []) if init else []) + list(spec["containers"])


def all_containers() -> list[tuple[str, dict[str, Any]]]:
    return [(workload["metadata"]["name"], container) for workload in workloads() for container in containers(workload)]


def secret_keys() -> set[str]:
    """The keys of the Secret the kustomization generates, as secrets.env.example lists them."""
    example = (K8S / "secrets.env.example").read_text(encoding="utf-8")
    return {line.split("=", 1)[0] for line in example.splitlines() if line.strip() and not line.startswith("#")}


def generated_secret_name() -> str:
    (generator,) = KUSTOMIZATION["secretGenerator"]
    assert generator["envs"] == ["secrets.env"]
    return str(generator["name"])


def validate_core(document: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(document, version, strict=True)


def validate_custom(document: dict[str, Any]) -> None:
    schema = json.loads(CUSTOM_SCHEMAS[(document["apiVersion"], document["kind"])].read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)


def validate(document: dict[str, Any]) -> None:
    if (document["apiVersion"], document["kind"]) in CUSTOM_SCHEMAS:
        validate_custom(document)
    else:
        for version in KUBERNETES_VERSIONS:
            validate_core(document, version)


# -------------------------------------------------------------------------------------------------------- schemas


@pytest.mark.parametrize(("file", "document"), DOCUMENTS, ids=IDS)
def test_every_manifest_is_valid_against_its_schema(file: str, document: dict[str, Any]) -> None:
    validate(document)


def test_the_schemas_refuse_a_misspelt_field_a_wrong_type_and_a_misplaced_keda_field() -> None:
    """The validation above can fail: the same manifests, each with one mistake an author could make."""
    deployment = json.loads(json.dumps(named("Deployment", "simfleet-cpu-worker")))
    deployment["spec"]["template"]["spec"]["containers"][0]["commands"] = ["simfleet"]  # not "command"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(deployment, KUBERNETES_VERSIONS[0])
    statefulset = json.loads(json.dumps(named("StatefulSet", "redis")))
    statefulset["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_core(statefulset, KUBERNETES_VERSIONS[0])
    scaled = json.loads(json.dumps(named("ScaledObject", "simfleet-cpu-worker")))
    scaled["spec"]["scalingModifiers"] = scaled["spec"]["advanced"].pop("scalingModifiers")  # belongs in advanced
    with pytest.raises(jsonschema.ValidationError):
        validate_custom(scaled)


def test_every_manifest_file_is_in_the_kustomization_and_every_listed_file_exists() -> None:
    files = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(KUSTOMIZATION["resources"]) == sorted(files)
    assert KUSTOMIZATION["namespace"] == named("Namespace", KUSTOMIZATION["namespace"])["metadata"]["name"]


def test_no_two_objects_of_a_kind_share_a_name() -> None:
    keys = [(document["kind"], document["metadata"]["name"]) for _, document in DOCUMENTS]
    assert len(keys) == len(set(keys))


# -------------------------------------------------------------------------------------------------------- secrets


def test_secrets_come_from_the_generated_secret_and_every_key_a_pod_names_is_in_the_example() -> None:
    secret = generated_secret_name()
    assert of_kind("Secret") == [], "a Secret in git would hold its values: secrets.env builds it"
    gitignored = (ROOT / ".gitignore").read_text(encoding="utf-8").split()
    assert "/ops/k8s/secrets.env" in gitignored
    used = set()
    for _, container in all_containers():
        for variable in container.get("env", []):
            reference = variable.get("valueFrom", {}).get("secretKeyRef")
            if reference:
                assert reference["name"] == secret
                used.add(reference["key"])
    for authentication in of_kind("TriggerAuthentication"):
        for reference in authentication["spec"]["secretTargetRef"]:
            assert reference["name"] == secret
            used.add(reference["key"])
    assert used == secret_keys(), "secrets.env.example lists exactly the keys the manifests use"
    for line in (K8S / "secrets.env.example").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            assert line.endswith("="), f"the example holds no secret value: {line}"


@pytest.mark.parametrize(("workload", "container"), all_containers(), ids=lambda value: str(value)[:40])
def test_no_secret_is_written_in_a_manifest_or_passed_as_an_argument(workload: str, container: dict[str, Any]) -> None:
    for variable in container.get("env", []):
        if SECRET_NAME.search(variable["name"]):
            assert "value" not in variable or "$(" in variable["value"], f"{workload}: {variable['name']} is literal"
    argv = " ".join(container.get("command", []) + container.get("args", []))
    assert "requirepass" not in argv.replace("requirepass %s", ""), f"{workload} passes the password as an argument"
    assert "--basic-auth" not in argv and "$(REDIS_PASSWORD)" not in argv and "$(FLOWER" not in argv


def test_every_config_map_a_pod_reads_exists() -> None:
    maps = {document["metadata"]["name"] for document in of_kind("ConfigMap")}
    for workload in workloads():
        for container in containers(workload):
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in maps
        for volume in pod_spec(workload).get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in maps


# ------------------------------------------------------------------------------------------------ pods and probes


@pytest.mark.parametrize(("workload", "container"), all_containers(), ids=lambda value: str(value)[:40])
def test_every_container_has_cpu_and_memory_requests_and_limits(workload: str, container: dict[str, Any]) -> None:
    resources = container["resources"]
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[kind]), f"{workload}/{container['name']} {kind}"


@pytest.mark.parametrize("workload", workloads(), ids=lambda workload: workload["metadata"]["name"])
def test_every_long_running_container_has_liveness_and_readiness_probes(workload: dict[str, Any]) -> None:
    for container in containers(workload, init=False):
        assert "livenessProbe" in container and "readinessProbe" in container, container["name"]


@pytest.mark.parametrize("workload", workloads(), ids=lambda workload: workload["metadata"]["name"])
def test_pods_run_as_a_non_root_user_without_privilege_escalation(workload: dict[str, Any]) -> None:
    assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
    for container in containers(workload):
        assert container["securityContext"]["allowPrivilegeEscalation"] is False


@pytest.mark.parametrize("workload", workloads(), ids=lambda workload: workload["metadata"]["name"])
def test_selectors_select_their_pods(workload: dict[str, Any]) -> None:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    assert workload["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_every_service_selects_a_workload_and_targets_a_named_port_it_has() -> None:
    for service in of_kind("Service"):
        if service["spec"].get("type") == "ExternalName":
            continue
        selector = service["spec"]["selector"].items()
        (workload,) = [w for w in workloads() if selector <= w["spec"]["template"]["metadata"]["labels"].items()]
        ports = {port["name"] for container in containers(workload, init=False) for port in container.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"{service['metadata']['name']}: {port['targetPort']}"


def test_the_workers_and_redis_have_disruption_budgets_that_select_them() -> None:
    budgets = of_kind("PodDisruptionBudget")
    covered = set()
    for workload in workloads():
        labels = workload["spec"]["template"]["metadata"]["labels"].items()
        if any(budget["spec"]["selector"]["matchLabels"].items() <= labels for budget in budgets):
            covered.add(workload["metadata"]["name"])
    assert covered >= {"redis", "simfleet-gpu-worker", "simfleet-cpu-worker"}
    assert named("PodDisruptionBudget", "simfleet-gpu-worker")["spec"]["maxUnavailable"] == 1


def test_every_image_is_redis_or_one_the_kustomization_points_at_a_registry() -> None:
    images = {image["name"] for image in KUSTOMIZATION["images"]}
    assert images == {"simfleet", "simfleet-gpu"}
    for workload, container in all_containers():
        assert container["image"] in images or container["image"].startswith("redis:7"), workload


# ---------------------------------------------------------------------------------------------------------- Redis


def conf_directives(text: str) -> dict[str, str]:
    directives = {}
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.strip().partition(" ")
            directives[key.lower()] = value.strip()
    return directives


def test_redis_config_map_carries_the_directives_of_ops_redis_conf() -> None:
    in_cluster = conf_directives(named("ConfigMap", "redis-config")["data"]["redis.conf"])
    in_repo = conf_directives((ROOT / "ops" / "redis" / "redis.conf").read_text(encoding="utf-8"))
    assert in_cluster == in_repo
    assert in_cluster["appendonly"] == "yes" and in_cluster["maxmemory-policy"] == "noeviction"


def test_redis_persists_on_a_volume_claim_and_reads_its_password_from_a_private_file() -> None:
    redis = named("StatefulSet", "redis")
    (claim,) = redis["spec"]["volumeClaimTemplates"]
    (server,) = pod_spec(redis)["containers"]
    assert {"name": claim["metadata"]["name"], "mountPath": "/data"} in server["volumeMounts"]
    assert conf_directives(named("ConfigMap", "redis-config")["data"]["redis.conf"])["dir"] == "/data"
    (init,) = pod_spec(redis)["initContainers"]
    script = init["command"][-1]
    assert script.startswith("umask 077") and "requirepass %s" in script and '"$REDIS_PASSWORD"' in script
    written = re.search(r"> (\S+)", script)
    assert written is not None and server["command"] == ["redis-server", written.group(1)]
    assert redis["spec"]["serviceName"] == "redis-headless"
    assert named("Service", "redis-headless")["spec"]["clusterIP"] == "None"
    limit_gi = float(server["resources"]["limits"]["memory"].removesuffix("Gi"))
    maxmemory = conf_directives(named("ConfigMap", "redis-config")["data"]["redis.conf"])["maxmemory"]
    assert limit_gi > float(maxmemory.removesuffix("gb")), "the pod's limit must exceed Redis's own maxmemory"


# -------------------------------------------------------------------------------------------- commands, settings


def container_env(container: dict[str, Any]) -> dict[str, str]:
    """A container's environment as the kubelet would give it, with placeholder secrets and $(VAR) expanded."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(named("ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "valueFrom" in variable:
            key = variable["valueFrom"]["secretKeyRef"]["key"]
            env[variable["name"]] = {
                "SIMFLEET_CLICKHOUSE_DSN": "http://simfleet:ch-secret@clickhouse:8123/simfleet",
                "FLOWER_BASIC_AUTH": "simfleet:flower-secret",
            }.get(key, f"{key.lower()}-secret")
        else:
            env[variable["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], variable["value"])
    return env


def simfleet_commands() -> list[tuple[str, list[str]]]:
    return [
        (workload, container["command"])
        for workload, container in all_containers()
        if container.get("command", [""])[0] == "simfleet"
    ]


@pytest.mark.parametrize(("workload", "argv"), simfleet_commands(), ids=lambda value: str(value)[:40])
def test_every_simfleet_command_is_a_real_entry_point(workload: str, argv: list[str]) -> None:
    args = build_parser().parse_args(argv[1:])
    assert callable(args.handler)


FLEET_WORKLOADS = [workload for workload in workloads() if workload["metadata"]["name"].startswith("simfleet-")]


@pytest.mark.parametrize("workload", FLEET_WORKLOADS, ids=lambda workload: workload["metadata"]["name"])
def test_fleet_pods_reach_redis_with_the_password_and_their_settings_load(workload: dict[str, Any]) -> None:
    for container in containers(workload, init=False):
        env = container_env(container)
        settings = load_settings(ROOT / "config" / "fleet.yaml", env=env)
        assert settings.broker_url == "redis://:redis_password-secret@redis:6379/0"
        assert settings.result_backend == "redis://:redis_password-secret@redis:6379/1"


def test_gpu_worker_takes_one_gpu_per_pod_and_shares_the_s3_checkpoint_store() -> None:
    gpu = named("Deployment", "simfleet-gpu-worker")
    (container,) = containers(gpu)
    for kind in ("requests", "limits"):
        assert container["resources"][kind]["nvidia.com/gpu"] == 1
    args = build_parser().parse_args(container["command"][1:])
    assert (args.role, args.device) == ("gpu", 0)
    assert container["image"] == "simfleet-gpu"
    settings = load_settings(ROOT / "config" / "fleet.yaml", env=container_env(container))
    assert settings.stores.checkpoint_url.startswith("s3://"), "pods on any node share an object store"
    assert settings.gpu_worker.backend == "cupy"
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(container_env(container))
    assert gpu["spec"]["strategy"]["rollingUpdate"]["maxSurge"] == 0, "an update never asks for a GPU more"
    assert pod_spec(gpu)["terminationGracePeriodSeconds"] >= 300


WORKER_PING = 'celery -A simfleet.worker.celery_main:app inspect ping --json --timeout 5 | grep -q "@$HOSTNAME\\""'
"""The workers' probe, which tests/fleet/test_deploy_healthchecks.py runs against a real worker."""


def test_worker_probes_ping_the_worker_of_this_pod_by_its_node_name() -> None:
    for name in ("simfleet-gpu-worker", "simfleet-cpu-worker"):
        (container,) = containers(named("Deployment", name))
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            shell, option, script = container[probe]["exec"]["command"]
            assert (shell, option) == ("sh", "-c")
            assert script == WORKER_PING, f"{name} {probe}"


def test_flower_and_exporter_are_internal_services_and_flower_asks_for_a_login() -> None:
    for service in ("flower", "exporter"):
        assert named("Service", service)["spec"].get("type", "ClusterIP") == "ClusterIP"
    (flower,) = containers(named("Deployment", "simfleet-flower"))
    assert flower["command"] == ["simfleet", "flower"]
    assert "FLOWER_BASIC_AUTH" in container_env(flower)
    probe = flower["livenessProbe"]["exec"]["command"]
    assert "os.environ['FLOWER_BASIC_AUTH']" in probe[-1], "the probe reads the login from the environment"
    (exporter,) = containers(named("Deployment", "simfleet-exporter"))
    assert exporter["readinessProbe"]["httpGet"]["path"] == "/healthz", "not ready while Redis does not answer"
    assert exporter["livenessProbe"]["httpGet"]["path"] == "/", "a Redis outage must not restart the exporter in a loop"


# ----------------------------------------------------------------------------------------------------------- KEDA


def test_keda_scales_cpu_workers_on_the_sum_of_every_des_run_priority_list() -> None:
    scaled = named("ScaledObject", "simfleet-cpu-worker")
    assert scaled["spec"]["scaleTargetRef"]["name"] == named("Deployment", "simfleet-cpu-worker")["metadata"]["name"]
    # Celery's Redis transport keeps one list per priority step: "<queue>" for 0, "<queue><sep><step>" otherwise.
    app = create_app(Settings())
    steps = app.conf.broker_transport_options["priority_steps"]
    separator = app.conf.broker_transport_options["sep"]
    queue = Settings().queues.des_run
    expected = {queue if step == 0 else f"{queue}{separator}{step}" for step in steps}
    triggers = scaled["spec"]["triggers"]
    assert all(trigger["type"] == "redis" for trigger in triggers)
    assert {trigger["metadata"]["listName"] for trigger in triggers} == expected
    # Several triggers alone give the HPA the largest of them: the modifier's formula must add every one, once.
    modifier = scaled["spec"]["advanced"]["scalingModifiers"]
    terms = [term.strip() for term in modifier["formula"].split("+")]
    assert sorted(terms) == sorted(trigger["name"] for trigger in triggers)
    assert float(modifier["target"]) > 0 and modifier["metricType"] == "AverageValue"


def test_keda_reaches_redis_by_its_full_service_name_with_the_secret_password() -> None:
    namespace = KUSTOMIZATION["namespace"]
    for trigger in named("ScaledObject", "simfleet-cpu-worker")["spec"]["triggers"]:
        host, _, port = trigger["metadata"]["address"].rpartition(":")
        assert host == f"redis.{namespace}.svc.cluster.local" and port == "6379"
        assert trigger["metadata"]["databaseIndex"] == "0"
        authentication = named("TriggerAuthentication", trigger["authenticationRef"]["name"])
        (reference,) = authentication["spec"]["secretTargetRef"]
        assert (reference["parameter"], reference["key"]) == ("password", "REDIS_PASSWORD")
