"""Fleet settings: one YAML file plus ``SIMFLEET_…`` environment overrides, validated when loaded.

The file is ``$SIMFLEET_CONFIG`` when set, else ``config/fleet.yaml`` under the current directory when it exists,
else the built-in defaults below (a local fleet on this machine). An environment variable overrides one key:
``SIMFLEET_BROKER_URL`` sets ``broker_url``, and a double underscore goes one level down
(``SIMFLEET_FLOWER__PASSWORD`` sets ``flower.password``). Values are read as YAML scalars, so ``5`` is a number.
Every error names the file (or variable) and the dotted key. Environment variables are read here and nowhere else.
"""

from __future__ import annotations

import dataclasses
import math
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from simfleet.shared.errors import ConfigError, printable
from simfleet.shared.user_files import parse_yaml, read_yaml

ENV_PREFIX = "SIMFLEET_"
CONFIG_ENV = "SIMFLEET_CONFIG"
ROLE_ENV = "SIMFLEET_WORKER_ROLE"
LOG_FORMAT_ENV = "SIMFLEET_LOG_FORMAT"
NODE_ENV = "SIMFLEET_NODE"
RESERVED_ENV = {CONFIG_ENV, ROLE_ENV, LOG_FORMAT_ENV, NODE_ENV}
"""Variables with the prefix that are not setting overrides: the settings file, a worker's role and node name, the
log format."""
DEFAULT_FILE = Path("config") / "fleet.yaml"
SERIALIZERS = ("msgpack", "json")
PRIORITIES = {"high": 0, "normal": 3, "background": 6}
"""Celery priority per class name. On Redis a lower number is served first."""


@dataclass(frozen=True)
class QueueNames:
    """The five queues; each has its own direct exchange and a routing key equal to its name."""

    lifecycle_load: str = "simulation.macroproperty.load"
    agents_create: str = "simulation.agents.create"
    run_execute: str = "simulation.run.execute"
    results_export: str = "simulation.results.export"
    des_run: str = "des.run"

    def all(self) -> list[str]:
        """Every queue name, lifecycle stages first."""
        return [getattr(self, f.name) for f in dataclasses.fields(self)]


@dataclass(frozen=True)
class CpuWorkerSettings:
    """The CPU worker role (DES replications).

    Attributes:
        concurrency: pool processes; ``None`` means one per core, leaving one core for the system above 2 cores.
        pin_cores: pin each pool process to its own core (only when there are more than 2 cores).
        max_memory_per_replication_mb: a replication whose process grows past this fails with a clear error.
        progress_interval_s: the least time between two PROGRESS reports of one replication.
    """

    concurrency: int | None = None
    pin_cores: bool = True
    max_memory_per_replication_mb: int = 4096
    progress_interval_s: float = 1.0


@dataclass(frozen=True)
class GpuWorkerSettings:
    """The GPU worker role (lifecycle jobs kept alive in memory between their stages).

    Attributes:
        backend: the lifecycle backend jobs run on unless they name one (numpy, cupy, numba, flamegpu).
        memory_budget_mb: live jobs one worker process keeps; past it the least recently used job is dropped from
            memory (it is checkpointed at every stage end, so it is restored when its next stage comes).
        heartbeat_interval_s: how often the worker refreshes its heartbeat key.
        heartbeat_ttl_s: how long the key lives: a worker silent this long is taken for dead by the watchdog.
        watchdog_interval_s: how often the worker's watchdog thread looks for dead owners (one at a time fleet-wide,
            under a Redis lock).
        progress_interval_s: the least time between two PROGRESS reports of an execute chunk.
        checkpoint_keep: progress checkpoints kept per job (older ones are pruned).
        checkpoint_level: zstd level of checkpoints.
    """

    backend: str = "numpy"
    memory_budget_mb: int = 8192
    heartbeat_interval_s: float = 2.0
    heartbeat_ttl_s: float = 10.0
    watchdog_interval_s: float = 5.0
    progress_interval_s: float = 1.0
    checkpoint_keep: int = 3
    checkpoint_level: int = 3


@dataclass(frozen=True)
class FlowerSettings:
    """Flower, the monitoring UI; basic auth is always on."""

    address: str = "127.0.0.1"
    port: int = 5555
    user: str = "simfleet"
    password: str = "simfleet"


@dataclass(frozen=True)
class LocalFleetSettings:
    """What ``simfleet fleet up`` starts on this machine."""

    run_dir: str = "runs/fleet"
    redis_port: int = 6390
    redis_password: str = "simfleet"
    cpu_workers: int = 1
    gpu_workers: int = 1
    flower: bool = True
    start_timeout_s: float = 60.0


@dataclass(frozen=True)
class StoreSettings:
    """Where blobs live: the checkpoint store every worker and producer of the fleet shares.

    Attributes:
        checkpoint_url: a directory (a path, or ``file:///abs/path``; one machine, or a mount every machine shares),
            an S3-compatible bucket (``s3://bucket/prefix?endpoint_url=http://minio:9000``; credentials from the
            standard AWS variables), or ``memory://name`` (one process; tests). See docs/stores.md.
        checkpoint_retention_s: how long the checkpoints of an ended job are kept (then pruned).
    """

    checkpoint_url: str = "runs/checkpoints"
    checkpoint_retention_s: float = 7 * 86_400.0


@dataclass(frozen=True)
class Settings:
    """Everything a producer or a worker needs to join the fleet.

    Attributes:
        broker_url: the Redis broker (``redis://:password@host:port/db``).
        result_backend: the Redis result backend.
        visibility_timeout_s: how long a reserved, unacknowledged message stays invisible before Redis hands it to
            another worker; it must exceed the longest task, or long tasks would run twice.
        result_expires_s: how long Celery keeps task results (replication summaries, stage states).
        records_expire_s: how long the records of ended lifecycle jobs and of DES studies are kept.
        redis_retry_s: how long a Redis command retries a lost connection, with backoff, before the fleet is
            reported unavailable (a Redis restart shorter than this goes unnoticed).
        accept_content: serialisations workers accept: msgpack and json only.
            Python's own serialisation is refused, since a message could then run code on a worker.
    """

    broker_url: str = "redis://:simfleet@127.0.0.1:6390/0"
    result_backend: str = "redis://:simfleet@127.0.0.1:6390/1"
    visibility_timeout_s: int = 43_200
    result_expires_s: int = 86_400
    records_expire_s: int = 7 * 86_400
    redis_retry_s: float = 30.0
    task_serializer: str = "msgpack"
    result_serializer: str = "msgpack"
    accept_content: tuple[str, ...] = SERIALIZERS
    queues: QueueNames = field(default_factory=QueueNames)
    cpu_worker: CpuWorkerSettings = field(default_factory=CpuWorkerSettings)
    gpu_worker: GpuWorkerSettings = field(default_factory=GpuWorkerSettings)
    flower: FlowerSettings = field(default_factory=FlowerSettings)
    local_fleet: LocalFleetSettings = field(default_factory=LocalFleetSettings)
    stores: StoreSettings = field(default_factory=StoreSettings)
    clickhouse_dsn: str = "chdb://runs/clickhouse"
    source: str = "<defaults>"

    def to_env(self) -> dict[str, str]:
        """Environment that makes a child process load these same settings."""
        return {CONFIG_ENV: self.source} if self.source not in ("<defaults>", "") else {}


SETTINGS_MAX_BYTES = 1 * 2**20
"""The largest settings file read (1 MiB)."""


def load_settings(path: str | Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Load, override and validate the settings.

    Raises:
        ConfigError: naming the file or variable and the key of the first problem.
    """
    env = os.environ if env is None else env
    chosen = Path(path) if path is not None else Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None
    if chosen is None and DEFAULT_FILE.exists():
        chosen = DEFAULT_FILE
    data: dict[str, Any] = {}
    source = "<defaults>"
    if chosen is not None:
        source = str(chosen.resolve())
        loaded = read_yaml(chosen, what="the settings file", max_bytes=SETTINGS_MAX_BYTES)
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError("expected a mapping of settings", source=str(chosen))
        data = loaded or {}
    from_env: dict[str, str] = {}
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        keys = name[len(ENV_PREFIX) :].lower().split("__")
        from_env[".".join(keys)] = name
        target = data
        for key in keys[:-1]:
            target = target.setdefault(key, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{'.'.join(keys[:-1])} is not a section", source=name)
        target[keys[-1]] = parse_yaml(raw, source=name, what="the value", max_depth=4, max_nodes=100) if raw else ""
    try:
        settings: Settings = dataclasses.replace(_build(Settings, data, "", source), source=source)
        _validate(settings)
    except ConfigError as exc:
        if exc.key in from_env:  # the bad value came from the environment: name the variable, not the file
            raise ConfigError(exc.reason, source=from_env[exc.key], key=exc.key) from exc
        raise
    return settings


def _build(cls: type[Any], data: Any, path: str, source: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping, got {data!r}", source=source, key=path or None)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source"}
    unknown = sorted(set(map(str, data)) - known)
    if unknown:
        key = f"{path}.{unknown[0]}" if path else unknown[0]
        raise ConfigError(f"unknown key (allowed: {', '.join(sorted(known))})", source=source, key=key)
    values: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{path}.{name}" if path else str(name)
        values[str(name)] = _coerce(hints[str(name)], value, key, source)
    return cls(**values)


def _coerce(hint: Any, value: Any, key: str, source: str) -> Any:
    if dataclasses.is_dataclass(hint):
        return _build(typing.cast(type[Any], hint), value, key, source)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        hint = next(option for option in options if option is not type(None))
        origin = typing.get_origin(hint)
    if origin is tuple:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"expected a list of strings, got {value!r}", source=source, key=key)
        return tuple(value)
    expected = {str: (str,), int: (int,), float: (int, float), bool: (bool,)}[hint]
    if not isinstance(value, expected) or (hint is not bool and isinstance(value, bool)):
        raise ConfigError(f"expected {hint.__name__}, got {printable(repr(value))}", source=source, key=key)
    if hint is float and not math.isfinite(typing.cast(float, value)):
        raise ConfigError(f"expected a finite number, got {value!r}", source=source, key=key)
    return float(typing.cast(float, value)) if hint is float else value


def _validate(settings: Settings) -> None:
    source = settings.source
    for key in ("broker_url", "result_backend"):
        url = getattr(settings, key)
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConfigError(
                f"expected a Redis URL such as redis://:password@host:6379/0, got {url!r}", source=source, key=key
            )
        if parts.scheme != "unix":
            try:
                port = parts.port
            except ValueError as exc:
                raise ConfigError(f"bad port in {url!r}", source=source, key=key) from exc
            if not parts.hostname or port is None:
                raise ConfigError(f"expected host and port in {url!r}", source=source, key=key)
    for key in ("task_serializer", "result_serializer"):
        if getattr(settings, key) not in SERIALIZERS:
            raise ConfigError(
                f"must be one of {', '.join(SERIALIZERS)}, got {getattr(settings, key)!r}", source=source, key=key
            )
    refused = [c for c in settings.accept_content if c not in SERIALIZERS]
    if refused:
        reason = (
            "pickle is refused: anyone who can write to the broker could run code on the workers"
            if any("pickle" in c for c in refused)
            else f"only {', '.join(SERIALIZERS)} are accepted, got {refused}"
        )
        raise ConfigError(reason, source=source, key="accept_content")
    if settings.visibility_timeout_s < 60:
        raise ConfigError(
            "must be at least 60 s (longer than the longest task)", source=source, key="visibility_timeout_s"
        )
    for key, value, least in (
        ("result_expires_s", settings.result_expires_s, 60),
        ("records_expire_s", settings.records_expire_s, 60),
        ("redis_retry_s", settings.redis_retry_s, 0),
        ("stores.checkpoint_retention_s", settings.stores.checkpoint_retention_s, 0),
    ):
        if value < least:
            raise ConfigError(f"must be at least {least}, got {value}", source=source, key=key)
    if not settings.stores.checkpoint_url.strip():
        raise ConfigError("expected a directory, file:///..., s3://bucket/... or memory://name", source=source,
                          key="stores.checkpoint_url")  # fmt: skip
    if settings.cpu_worker.concurrency is not None and settings.cpu_worker.concurrency < 1:
        raise ConfigError("must be at least 1", source=source, key="cpu_worker.concurrency")
    gpu = settings.gpu_worker
    if gpu.heartbeat_ttl_s <= gpu.heartbeat_interval_s:
        raise ConfigError(
            f"must exceed gpu_worker.heartbeat_interval_s ({gpu.heartbeat_interval_s})",
            source=source,
            key="gpu_worker.heartbeat_ttl_s",
        )
    for key, value in (
        ("gpu_worker.checkpoint_keep", gpu.checkpoint_keep),
        ("gpu_worker.memory_budget_mb", gpu.memory_budget_mb),
    ):
        if value < 1:
            raise ConfigError("must be at least 1", source=source, key=key)
    if not 1 <= gpu.checkpoint_level <= 22:
        raise ConfigError("zstd levels are 1..22", source=source, key="gpu_worker.checkpoint_level")
    ports = (("flower.port", settings.flower.port), ("local_fleet.redis_port", settings.local_fleet.redis_port))
    for key, port in ports:
        if not 0 < port < 65536:
            raise ConfigError(f"not a TCP port: {port}", source=source, key=key)
