"""The local fleet's passwords: generated once by ``simfleet fleet up``, kept where only their owner can read them.

``<local_fleet.run_dir>/secrets/passwords.yaml`` (mode 0600, in a folder of mode 0700) holds the Redis password
and Flower's password of the fleet ``fleet up`` starts on this machine. Settings give a password instead when they
have one (a password in the broker URL, ``local_fleet.redis_password``, ``flower.password``, or their environment
overrides); only the ones they leave empty are generated, on the first start, and reused on every later one.

Every client on the same machine finds them without the user typing them: loading the settings fills a
password-less broker or result backend URL that names the local fleet's Redis (this machine, port
``local_fleet.redis_port``), and an empty ``flower.password``, from this file. Clients on other machines have no such
file: their settings (or ``SIMFLEET_BROKER_URL``) carry the password. A secrets file that others could read is
refused, as ssh refuses a private key in the same state.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
import stat
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from simfleet.shared.errors import ConfigError
from simfleet.shared.settings import Settings
from simfleet.shared.user_files import parse_yaml

SECRETS_DIR = "secrets"
SECRETS_FILE = "passwords.yaml"
REDIS_CONFIG_FILE = "redis.conf"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
KEYS = ("redis_password", "flower_password")
PASSWORD_BYTES = 24
"""Random bytes per generated password (32 URL-safe characters)."""


def secrets_dir(settings: Settings) -> Path:
    """The folder of the local fleet's secrets (the secrets file and the Redis configuration)."""
    return Path(settings.local_fleet.run_dir) / SECRETS_DIR


def secrets_path(settings: Settings) -> Path:
    """The local fleet's secrets file."""
    return secrets_dir(settings) / SECRETS_FILE


def is_local_fleet_url(settings: Settings, url: str) -> bool:
    """Whether ``url`` names the Redis server of the local fleet: this machine, port ``local_fleet.redis_port``."""
    parts = urlsplit(url)
    return (
        parts.scheme in ("redis", "rediss")
        and parts.hostname in LOCAL_HOSTS
        and parts.port == settings.local_fleet.redis_port
    )


def url_password(url: str) -> str:
    """The password of a Redis URL, percent-decoded (empty when it has none)."""
    password = urlsplit(url).password
    return unquote(password) if password else ""


def with_password(url: str, password: str) -> str:
    """``url`` with ``password`` (percent-encoded) as its password."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or ""
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def read_secrets(path: Path) -> dict[str, str]:
    """The passwords in ``path``; empty when it does not exist.

    Raises:
        ConfigError: naming the file, when others may read it or it is not a mapping of passwords.
    """
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the fleet's secrets file: {exc.strerror}", source=str(path)) from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"others may read this secrets file (mode {stat.S_IMODE(mode):04o}); run: chmod 600 {path}",
                          source=str(path))  # fmt: skip
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the fleet's secrets file: {exc}", source=str(path)) from exc
    data = parse_yaml(text, source=str(path), what="the secrets file", max_depth=2, max_nodes=20) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping with {' and '.join(KEYS)}", source=str(path))
    found: dict[str, str] = {}
    for key in KEYS:
        value = data.get(key)
        if value is not None:
            if not isinstance(value, str) or not value:
                raise ConfigError("expected a non-empty string", source=str(path), key=key)
            found[key] = value
    return found


def write_private(path: Path, text: str) -> None:
    """Write ``path`` with mode 0600 in a folder of mode 0700, atomically: it is never readable by others, even briefly.

    The folder is created (or narrowed) to 0700 first; the file is created 0600 under a temporary name, synced and
    renamed over ``path``.
    """
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _local_without_password(settings: Settings) -> list[str]:
    """The keys of the URLs that name the local fleet's Redis without a password."""
    return [
        key for key in ("broker_url", "result_backend")
        if is_local_fleet_url(settings, getattr(settings, key)) and not url_password(getattr(settings, key))
    ]  # fmt: skip


def needed(settings: Settings) -> dict[str, bool]:
    """Which passwords the settings leave to the secrets file."""
    return {
        "redis_password": bool(_local_without_password(settings)) and not settings.local_fleet.redis_password,
        "flower_password": not settings.flower.password,
    }


def with_local_secrets(settings: Settings, found: dict[str, str] | None = None) -> Settings:
    """``settings`` with the passwords they leave empty taken from the local fleet's secrets file (or ``found``).

    A password-less URL of the local fleet's Redis gets ``local_fleet.redis_password`` if set, else the file's; an
    empty ``flower.password`` gets the file's. Passwords the settings give are never replaced; without the file
    the settings come back unchanged.
    """
    wanted = needed(settings)
    if found is None:
        found = read_secrets(secrets_path(settings)) if any(wanted.values()) else {}
    redis_password = settings.local_fleet.redis_password or found.get("redis_password", "")
    changes: dict[str, object] = {}
    if redis_password:
        for key in _local_without_password(settings):
            changes[key] = with_password(getattr(settings, key), redis_password)
    if wanted["flower_password"] and found.get("flower_password"):
        changes["flower"] = dataclasses.replace(settings.flower, password=found["flower_password"])
    return dataclasses.replace(settings, **changes) if changes else settings  # type: ignore[arg-type]


def ensure_local_secrets(settings: Settings) -> Settings:
    """Generate the passwords the settings leave empty (once; later calls reuse them) and return the filled settings.

    The secrets file is written (0600, folder 0700) only when a password is missing from it.
    """
    path = secrets_path(settings)
    found = read_secrets(path)
    missing = [key for key, wanted in needed(settings).items() if wanted and key not in found]
    if missing:
        found = {**found, **{key: secrets.token_urlsafe(PASSWORD_BYTES) for key in missing}}
        lines = [
            "# Passwords of the local fleet, generated by 'simfleet fleet up' and reused on every start.",
            "# Readable only by you (mode 0600). Delete this file (with the fleet down) to draw new ones.",
            *(f"{key}: {json.dumps(value)}" for key, value in sorted(found.items())),
        ]
        write_private(path, "\n".join(lines) + "\n")
    return with_local_secrets(settings, found)


def redis_config(port: int, password: str, data_dir: Path) -> str:
    """A redis.conf for the local fleet's server: this machine only, a password, append-only, no eviction."""

    def quoted(value: str) -> str:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        return f'"{escaped}"'

    return "\n".join([
        "# Written by 'simfleet fleet up' at every start; readable only by you (it holds the password).",
        f"port {port}",
        "bind 127.0.0.1",
        f"requirepass {quoted(password)}",
        "appendonly yes",
        "maxmemory-policy noeviction",
        f"dir {quoted(str(data_dir))}",
        'save ""',
        "",
    ])  # fmt: skip
