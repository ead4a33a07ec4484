"""The command line's skeleton, as a user meets it: --version, --config on every command, help on every option, shell
completion, and what a quick command loads (``--help`` and ``job status`` must not pay for the engines).

The tree of commands is walked from the real parser, the worker side's commands (``worker``, ``watchdog``, ``fleet``)
included, so that a command added later is held to the same rules. The commands run in subprocesses where what
matters is the process as a whole (its modules, its exit code, the shell's completion protocol).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest

from simfleet.producer.cli import build_parser, main
from simfleet.shared.settings import CONFIG_ENV
from tests.conftest import free_port

SIMFLEET = Path(sys.executable).with_name("simfleet")
HEAVY = ("numpy", "scipy", "numba", "matplotlib", "pyarrow", "pandas", "networkx", "chdb", "clickhouse_connect",
         "celery")  # fmt: skip
"""What a command that only parses its flags, or only reads a record in Redis, need not import (a local lifecycle run
needs numpy and pyarrow, and only them)."""


Command = tuple[tuple[str, ...], argparse.ArgumentParser]


def commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[Command]:
    """Every command path (the top level as ``()``) with its parser, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from commands(child, (*path, name))


ALL = list(commands(build_parser()))
LEAVES = [path for path, parser in ALL if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)]


def environment(**extra: str) -> dict[str, str]:
    """The test process's environment without fleet settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMFLEET_") and not k.startswith("_ARGCOMPLETE")}
    return {**env, **extra}


def run(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SIMFLEET), *args], capture_output=True, text=True, cwd=cwd, env=environment(**env),
                          timeout=120)  # fmt: skip


def test_the_tree_holds_every_family_including_the_worker_side() -> None:
    families = {path[0] for path, _ in ALL if len(path) == 1}
    assert families == {"des", "lifecycle", "study", "job", "checkpoint", "db", "worker", "watchdog", "fleet", "flower",
                        "exporter"}  # fmt: skip
    assert ("fleet", "up") in LEAVES and ("des", "run") in LEAVES


def test_version_prints_the_installed_version(tmp_path: Path) -> None:
    done = run("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"simfleet {version('simfleet')}"


@pytest.mark.parametrize("path", [path for path, _ in ALL], ids=lambda path: " ".join(path) or "simfleet")
def test_every_command_takes_config_and_names_the_flag_of_a_missing_file(
    path: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-settings.yaml"
    with pytest.raises(SystemExit) as stopped:
        main([*path, "--config", str(missing)])
    err = capsys.readouterr().err
    assert stopped.value.code == 2
    last = err.strip().splitlines()[-1]
    assert "--config" in last and str(missing) in last and "Traceback" not in err


def test_an_unreadable_config_is_named(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder"
    folder.mkdir()
    done = run("job", "status", "abc", "--config", str(folder), cwd=tmp_path)
    assert done.returncode == 2
    assert "--config" in done.stderr and "a-folder" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("where", ["before the command", "after the subcommand"])
def test_config_chooses_the_settings_file_as_simfleet_config_does(tmp_path: Path, where: str) -> None:
    port = free_port()  # nothing listens there: the command must say that it tried this file's Redis
    settings = tmp_path / "elsewhere.yaml"
    settings.write_text(f"broker_url: redis://127.0.0.1:{port}/0\nresult_backend: redis://127.0.0.1:{port}/1\n"
                        "redis_retry_s: 0.1\n")  # fmt: skip
    args = ["--config", str(settings), "job", "status", "abc"]
    if where == "after the subcommand":
        args = ["job", "status", "abc", "--config", str(settings)]
    done = run(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert f"127.0.0.1:{port}" in done.stderr and "unreachable" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_bad_settings_file_given_with_config_is_named_with_its_key(tmp_path: Path) -> None:
    settings = tmp_path / "typo.yaml"
    settings.write_text("brokr_url: redis://127.0.0.1:6379/0\n")
    done = run("fleet", "status", "--config", str(settings), cwd=tmp_path)
    assert done.returncode == 2
    assert "typo.yaml" in done.stderr and "brokr_url" in done.stderr and "Traceback" not in done.stderr


def test_config_holds_for_one_command_of_a_process(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.delenv(CONFIG_ENV, raising=False)
    settings = tmp_path / "typo.yaml"
    settings.write_text("brokr_url: redis://127.0.0.1:6379/0\n")
    assert main(["job", "list", "--config", str(settings)]) == 2
    assert "typo.yaml" in capsys.readouterr().err
    assert CONFIG_ENV not in os.environ  # the next call of main in this process reads its own settings again


def test_every_option_argument_and_command_has_help() -> None:
    missing = []
    for path, parser in ALL:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {choice.dest for choice in action._choices_actions if choice.help}
                missing += [" ".join((*path, name)) for name in action.choices if name not in helped]
            elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
                missing.append(" ".join((*path, *(action.option_strings or [action.dest]))))
    assert missing == []


def test_every_help_page_is_printed(tmp_path: Path) -> None:
    script = (
        "import sys\nfrom simfleet.producer.cli import main\npages = {}\n"
        f"for path in {[list(p) for p, _ in ALL]!r}:\n"
        "    try:\n        main([*path, '--help'])\n"
        "    except SystemExit as exc:\n        pages[' '.join(path)] = exc.code\n"
        "print(sorted(pages.items()))\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=environment())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "--config FILE" in done.stdout and "Traceback" not in done.stderr
    assert all(code == 0 for _, code in eval(done.stdout.strip().splitlines()[-1]))


def complete(line: str, tmp_path: Path) -> list[str]:
    """What the shell's completion would offer for ``line`` (argcomplete's protocol, as bash runs it)."""
    answer = tmp_path / "completions"
    env = environment(_ARGCOMPLETE="1", _ARGCOMPLETE_IFS="\v", COMP_LINE=line, COMP_POINT=str(len(line)),
                      COMP_TYPE="9", _ARGCOMPLETE_STDOUT_FILENAME=str(answer))  # fmt: skip
    done = subprocess.run([str(SIMFLEET)], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert done.returncode == 0, done.stderr
    return answer.read_text().split("\v")


def test_completion_offers_the_subcommands_of_a_family(tmp_path: Path) -> None:
    offered = complete("simfleet des ", tmp_path)
    assert {"run", "validate", "sla", "sweep"} <= {word.strip() for word in offered}


def test_completion_offers_config_and_the_families(tmp_path: Path) -> None:
    assert {"job", "lifecycle", "fleet", "worker"} <= {word.strip() for word in complete("simfleet ", tmp_path)}
    assert "--config" in {word.strip() for word in complete("simfleet job status --con", tmp_path)}


def loaded_by(commands: list[list[str]], tmp_path: Path, **env: str) -> dict[str, object]:
    """Run ``commands`` one after the other in a fresh interpreter; their exit codes and the heavy modules loaded."""
    script = (
        "import json, sys\nfrom simfleet.producer.cli import main\ncodes = []\n"
        f"for argv in {commands!r}:\n"
        "    try:\n        codes.append(main(argv))\n    except SystemExit as exc:\n        codes.append(exc.code)\n"
        f"heavy = sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})\n"
        "print(json.dumps({'codes': codes, 'heavy': heavy}))\n"
    )  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=environment(**env))  # fmt: skip
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["stderr"] = done.stderr
    return result


def test_help_of_every_command_loads_none_of_the_heavy_modules(tmp_path: Path) -> None:
    result = loaded_by([[*path, "--help"] for path, _ in ALL] + [["--version"]], tmp_path)
    assert result["codes"] == [0] * (len(ALL) + 1)
    assert result["heavy"] == []


def test_job_status_against_an_unreachable_redis_fails_in_one_line_without_the_engines(tmp_path: Path) -> None:
    port = free_port()
    result = loaded_by([["job", "status", "some-job"]], tmp_path, SIMFLEET_BROKER_URL=f"redis://127.0.0.1:{port}/0",
                       SIMFLEET_RESULT_BACKEND=f"redis://127.0.0.1:{port}/1", SIMFLEET_REDIS_RETRY_S="0.1")  # fmt: skip
    assert result["codes"] == [2]
    lines = str(result["stderr"]).strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "unreachable" in lines[0]
    assert result["heavy"] == []


def test_a_local_lifecycle_run_loads_neither_pandas_nor_the_other_engines(tmp_path: Path) -> None:
    inputs = tmp_path / "fleet"
    synth = run("lifecycle", "synth", "--aircraft", "12", "--days", "60", "--out", str(inputs), cwd=tmp_path)
    assert synth.returncode == 0, synth.stderr
    result = loaded_by([["lifecycle", "run", "--inputs", str(inputs), "--json"]], tmp_path)
    assert result["codes"] == [0], result["stderr"]
    assert result["heavy"] == ["numpy", "pyarrow"]  # pandas would come with pyarrow's to_numpy (0.3 s)
