"""Settings files are read under the rules of every YAML file (simfleet.shared.yaml_files): one error naming the
file, never a traceback or a hang."""

import os
import re
from pathlib import Path

import pytest

from simfleet.shared.errors import ConfigError
from simfleet.shared.settings import load_settings


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (b"\xff\xfe\x00b\x00", "UTF-16 text; expected UTF-8"),
        (b"broker_url: [1\n", "not valid YAML"),
        (b"gpu_worker: {heartbeat_ttl_s: .nan}\n", "gpu_worker.heartbeat_ttl_s: expected a finite number"),
        (b"records_expire_s: 600\nrecords_expire_s: 700\n", "records_expire_s: duplicate key"),
        (
            b"".join(
                b"a%d: &a%d [" % (i, i) + b", ".join([b"*a%d" % (i - 1) if i else b"x"] * 10) + b"]\n" for i in range(7)
            ),
            "more than 100,000 values",
        ),
        (b"[" * 100 + b"]" * 100, "nests deeper than 32 levels"),
        (b"#" * (2**20 + 1), "larger than the limit of 1,048,576 bytes"),
        (
            b"a: &a [[[[[[[[[[x]]]]]]]]]]\nb: &b [[[[[[[[[[*a]]]]]]]]]]\nc: &c [[[[[[[[[[*b]]]]]]]]]]\nd: [[[[*c]]]]\n",
            "nests deeper than 32 levels once aliases are expanded",
        ),
        (b"records_expire_s: " + b"9" * 5000 + b"\n", "a value cannot be read"),
    ],
)
def test_a_bad_settings_file_is_one_error_naming_it(tmp_path: Path, content: bytes, said: str) -> None:
    path = tmp_path / "fleet.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match=re.escape(said)) as caught:
        load_settings(path, env={})
    assert str(path.name) in str(caught.value)


def test_a_settings_fifo_or_device_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fleet.yaml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="FIFO"):
        load_settings(fifo, env={})
    with pytest.raises(ConfigError, match="is a device, not a regular file"):
        load_settings("/dev/zero", env={})
