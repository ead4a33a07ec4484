"""The same tests against every blob store (the ``store`` fixture), then what is particular to each."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from simfleet.shared.errors import CheckpointError, ConfigError
from simfleet.shared.stores import SCHEMES, BlobStore, open_store
from simfleet.shared.stores.clickhouse import ClickHouseStore, parse_url
from simfleet.shared.stores.directory import DirectoryStore
from simfleet.shared.stores.memory import MemoryStore
from tests.conftest import REGION, free_port, needs_boto3, needs_moto, s3_url

MIB = 1 << 20
BIG = random.Random(0).randbytes(5 * MIB)
BAD_KEYS = ["", "/job-1/a", "../a", "job-1/../a", "job-1/..", "job-1//a", "job-1/", ".hidden", "job-1/.a.tmp",
            "job-1/./a", "job\\1/a", "job-1/a\x00"]  # fmt: skip
BAD_PREFIXES = ["/", "/job-1/", "../", "job-1/../", "job-1//", "job-1/."]


# ------------------------------------------------------------------------------------------- every store, alike


@pytest.mark.parametrize(
    "blob", [b"", b"\x00", b"checkpoint bytes \xff\xfe", BIG], ids=["empty", "nul", "small", "5MiB"]
)
def test_put_get_round_trip(store: BlobStore, blob: bytes) -> None:
    store.put("job-1/blob.ckpt", blob)
    assert store.get("job-1/blob.ckpt") == blob
    assert store.keys("job-1/") == ["job-1/blob.ckpt"]


def test_put_takes_any_bytes_like_and_keeps_a_copy(store: BlobStore) -> None:
    buffer = bytearray(b"first")
    store.put("job-1/a", buffer)  # type: ignore[arg-type]
    buffer[:] = b"later"
    assert store.get("job-1/a") == b"first"


def test_overwrite_replaces_the_blob(store: BlobStore) -> None:
    store.put("job-1/a", BIG)
    store.put("job-1/a", b"short")
    assert store.get("job-1/a") == b"short"
    store.put("job-1/a", b"")
    assert store.get("job-1/a") == b""
    assert store.keys("") == ["job-1/a"]


def test_missing_key_is_a_checkpoint_error_naming_store_and_key(store: BlobStore) -> None:
    with pytest.raises(CheckpointError) as missing:
        store.get("job-1/never-written.ckpt")
    assert "job-1/never-written.ckpt" in str(missing.value)
    assert store.url in str(missing.value)
    store.put("job-1/sub/a", b"x")
    with pytest.raises(CheckpointError, match="job-1/sub"):
        store.get("job-1/sub")  # a "folder" of keys is not a blob


def test_delete_is_idempotent(store: BlobStore) -> None:
    store.delete("job-1/never-written")
    store.put("job-1/a", b"1")
    store.put("job-1/b", b"2")
    store.delete("job-1/a")
    store.delete("job-1/a")
    with pytest.raises(CheckpointError):
        store.get("job-1/a")
    assert store.keys("job-1/") == ["job-1/b"]


def test_keys_by_prefix_sorted(store: BlobStore) -> None:
    written = ["job-1/progress-00010", "job-1/b", "job-2/a", "job-10/a", "job-1/a", "job-1/sub/x", "other"]
    for key in random.Random(1).sample(written, len(written)):
        store.put(key, key.encode())
    assert store.keys("job-1/") == ["job-1/a", "job-1/b", "job-1/progress-00010", "job-1/sub/x"]
    assert store.keys("job-1") == ["job-1/a", "job-1/b", "job-1/progress-00010", "job-1/sub/x", "job-10/a"]
    assert store.keys("job-1/p") == ["job-1/progress-00010"]
    assert store.keys("job-1/sub/") == ["job-1/sub/x"]
    assert store.keys("") == sorted(written)
    assert store.keys("job-3/") == []
    assert store.keys("nothing/deeper/") == []


def test_delete_prefix_removes_exactly_the_prefix(store: BlobStore) -> None:
    for key in ["job-1/a", "job-1/b", "job-1/sub/c", "job-10/a", "job-2/a"]:
        store.put(key, b"x")
    assert store.delete_prefix("job-1/") == 3
    assert store.keys("") == ["job-10/a", "job-2/a"]
    assert store.delete_prefix("job-1/") == 0
    assert store.delete_prefix("job-") == 2
    assert store.keys("") == []
    assert store.delete_prefix("") == 0


def test_a_reader_never_sees_a_partial_blob(store: BlobStore) -> None:
    """While 5 MiB blobs are written and overwritten, every read gives nothing or a whole blob."""
    old, new = BIG, bytes(reversed(BIG[: 4 * MIB]))
    done = threading.Event()
    failures: list[BaseException] = []

    def write() -> None:
        try:
            for blob in (old, new, old, new):
                store.put("job-1/blob", blob)
        except BaseException as exc:
            failures.append(exc)
        finally:
            done.set()

    writer = threading.Thread(target=write)
    writer.start()
    reads = 0
    while not done.is_set():
        assert set(store.keys("job-1/")) <= {"job-1/blob"}
        try:
            seen = store.get("job-1/blob")
        except CheckpointError:
            continue  # not written yet: nothing, which is allowed
        assert seen in (old, new), f"partial blob of {len(seen)} bytes"
        reads += 1
    writer.join()
    assert not failures
    assert store.get("job-1/blob") == new
    assert store.keys("") == ["job-1/blob"]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_before_any_io(store: BlobStore, key: str) -> None:
    for action in (lambda: store.put(key, b"x"), lambda: store.get(key), lambda: store.delete(key)):
        with pytest.raises(ConfigError, match="bad blob key"):
            action()
    assert store.keys("") == []


@pytest.mark.parametrize("prefix", BAD_PREFIXES)
def test_bad_prefixes_are_refused(store: BlobStore, prefix: str) -> None:
    with pytest.raises(ConfigError, match="bad key prefix"):
        store.keys(prefix)
    with pytest.raises(ConfigError, match="bad key prefix"):
        store.delete_prefix(prefix)


def test_a_store_closes_as_a_context_manager(store: BlobStore) -> None:
    with store as same:
        assert same is store
        same.put("job-1/a", b"x")


# ------------------------------------------------------------------------------------------------- directories


def test_directory_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("job-1/a.ckpt", BIG)
    store.put("job-1/a.ckpt", b"again")
    assert sorted(path.name for path in (tmp_path / "job-1").iterdir()) == ["a.ckpt"]


def test_directory_blob_is_invisible_until_renamed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """At the fsync of the temporary file, the whole blob is on disk, yet neither keys() nor get() shows it."""
    store = DirectoryStore(tmp_path)
    seen: list[tuple[list[str], list[str]]] = []
    real_fsync = os.fsync

    def watching_fsync(descriptor: int) -> None:
        real_fsync(descriptor)
        if not seen:
            temps = sorted(path.name for path in (tmp_path / "job-1").iterdir())
            seen.append((store.keys(""), temps))
            with pytest.raises(CheckpointError, match="no such blob"):
                store.get("job-1/a.ckpt")

    monkeypatch.setattr("simfleet.shared.stores.directory.os.fsync", watching_fsync)
    store.put("job-1/a.ckpt", BIG)
    ((keys, files),) = seen
    assert keys == []
    assert len(files) == 1 and files[0].startswith(".a.ckpt.") and files[0].endswith(".tmp")
    assert store.get("job-1/a.ckpt") == BIG


def test_directory_failed_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = DirectoryStore(tmp_path)

    def failing_replace(source: str, target: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("simfleet.shared.stores.directory.os.replace", failing_replace)
    with pytest.raises(CheckpointError, match=r"job-1/a: cannot write: No space left on device"):
        store.put("job-1/a", b"x")
    assert list((tmp_path / "job-1").iterdir()) == []


def test_directory_delete_prefix_removes_empty_job_folders_and_stale_temporaries(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path / "root")
    store.put("job-1/a", b"x")
    store.put("job-1/sub/b", b"x")
    store.put("job-2/a", b"x")
    (tmp_path / "root" / "job-1" / ".c.0123456789ab.tmp").write_bytes(b"left by a writer that died")
    assert store.delete_prefix("job-1/") == 2
    assert sorted(path.name for path in (tmp_path / "root").iterdir()) == ["job-2"]
    store.delete("job-2/a")
    assert store.delete_prefix("job-2/") == 0
    assert list((tmp_path / "root").iterdir()) == []
    assert (tmp_path / "root").is_dir()


def test_directory_delete_prefix_keeps_folders_with_other_keys(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("job-1/progress-1", b"x")
    store.put("job-1/result-1", b"x")
    assert store.delete_prefix("job-1/progress") == 1
    assert store.keys("") == ["job-1/result-1"]


def test_directory_key_cannot_be_blob_and_folder(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("job-1/a", b"x")
    with pytest.raises(CheckpointError, match="job-1/a/b: cannot write"):
        store.put("job-1/a/b", b"y")
    with pytest.raises(CheckpointError, match="job-1/a/b: no such blob"):
        store.get("job-1/a/b")
    store.delete("job-1/a/b")
    assert store.keys("") == ["job-1/a"]


def test_directory_unreadable_blob_is_a_checkpoint_error(tmp_path: Path) -> None:
    store = DirectoryStore(tmp_path)
    store.put("job-1/a", b"x")
    (tmp_path / "job-1" / "a").chmod(0)
    try:
        if os.access(tmp_path / "job-1" / "a", os.R_OK):
            pytest.skip("running as root: permissions do not stop reads")
        with pytest.raises(CheckpointError, match="job-1/a: cannot read"):
            store.get("job-1/a")
    finally:
        (tmp_path / "job-1" / "a").chmod(0o644)


# ------------------------------------------------------------------------------------------------------ memory


def test_memory_stores_of_one_name_are_one_store() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    first, second, other = open_store(f"memory://{name}"), open_store(f"memory://{name}"), open_store("memory://x")
    first.put("job-1/a", b"x")
    assert second.get("job-1/a") == b"x"
    assert other.keys("job-1/") == []
    MemoryStore.discard(name)
    assert open_store(f"memory://{name}").keys("") == []


# ----------------------------------------------------------------------------------------------------------- S3


@needs_moto
def test_s3_keys_list_only_complete_objects(s3_endpoint: str, s3_bucket: str) -> None:
    """A multipart upload in progress (the form a large upload takes) is neither listed nor readable."""
    import boto3

    store = open_store(s3_url(s3_endpoint, s3_bucket, "fleet"))
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    upload = client.create_multipart_upload(Bucket=s3_bucket, Key="fleet/job-1/big")
    client.upload_part(Bucket=s3_bucket, Key="fleet/job-1/big", UploadId=upload["UploadId"], PartNumber=1,
                       Body=BIG)  # fmt: skip
    assert store.keys("") == []
    with pytest.raises(CheckpointError, match="job-1/big: no such blob"):
        store.get("job-1/big")
    client.abort_multipart_upload(Bucket=s3_bucket, Key="fleet/job-1/big", UploadId=upload["UploadId"])
    client.close()


@needs_moto
def test_s3_prefixes_keep_stores_apart(s3_endpoint: str, s3_bucket: str) -> None:
    import boto3

    whole = open_store(s3_url(s3_endpoint, s3_bucket))
    fleet_a = open_store(s3_url(s3_endpoint, s3_bucket, "fleet-a/checkpoints"))
    fleet_b = open_store(s3_url(s3_endpoint, s3_bucket, "fleet-a/checkpoints-b"))
    fleet_a.put("job-1/a", b"a")
    fleet_b.put("job-1/a", b"b")
    assert fleet_a.keys("") == ["job-1/a"] and fleet_a.get("job-1/a") == b"a"
    assert fleet_b.keys("") == ["job-1/a"] and fleet_b.get("job-1/a") == b"b"
    assert whole.keys("") == ["fleet-a/checkpoints-b/job-1/a", "fleet-a/checkpoints/job-1/a"]
    assert fleet_a.delete_prefix("") == 1
    assert whole.keys("") == ["fleet-a/checkpoints-b/job-1/a"]
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)
    assert client.get_object(Bucket=s3_bucket, Key="fleet-a/checkpoints-b/job-1/a")["Body"].read() == b"b"
    client.close()


@needs_moto
def test_s3_listing_pages_past_a_thousand_keys(s3_endpoint: str, s3_bucket: str) -> None:
    store = open_store(s3_url(s3_endpoint, s3_bucket))
    keys = [f"job-1/{index:05d}" for index in range(1005)]
    with ThreadPoolExecutor(8) as pool:  # boto3 clients are thread-safe
        list(pool.map(lambda key: store.put(key, b""), keys))
    assert store.keys("job-1/") == keys


@needs_moto
def test_s3_missing_bucket_is_named(s3_endpoint: str, aws_env: None) -> None:
    store = open_store(s3_url(s3_endpoint, "no-such-bucket-here"))
    with pytest.raises(CheckpointError, match="no such bucket 'no-such-bucket-here'") as put:
        store.put("job-1/a", b"x")
    assert "job-1/a" in str(put.value)
    assert put.value.__cause__ is not None
    with pytest.raises(CheckpointError, match="no such bucket"):
        store.keys("job-1/")


@needs_moto
def test_s3_access_denied_is_a_checkpoint_error(s3_endpoint: str, s3_bucket: str) -> None:
    """The service's 403 (stubbed: moto does not check credentials) becomes a CheckpointError with the key."""
    from botocore.exceptions import ClientError
    from botocore.stub import Stubber

    store = open_store(s3_url(s3_endpoint, s3_bucket))
    with Stubber(store._client) as stub:  # type: ignore[attr-defined]
        stub.add_client_error("get_object", "AccessDenied", "Access Denied", http_status_code=403)
        stub.add_client_error("put_object", "InvalidAccessKeyId", "The key does not exist", http_status_code=403)
        with pytest.raises(CheckpointError, match=r"job-1/a: access denied \(AccessDenied: Access Denied\)") as got:
            store.get("job-1/a")
        assert isinstance(got.value.__cause__, ClientError)
        with pytest.raises(CheckpointError, match=r"job-1/b: access denied \(InvalidAccessKeyId"):
            store.put("job-1/b", b"x")


@needs_moto
def test_s3_without_credentials_says_where_they_come_from(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store_url = s3_url(s3_endpoint, s3_bucket)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    store = open_store(store_url)
    with pytest.raises(CheckpointError, match=r"job-1/a: no usable credentials.*AWS_ACCESS_KEY_ID"):
        store.get("job-1/a")


@needs_boto3
@pytest.mark.usefixtures("aws_env")
def test_s3_unreachable_endpoint_fails_within_seconds() -> None:
    port = free_port()  # nothing listens there
    store = open_store(f"s3://bucket/fleet?endpoint_url=http://127.0.0.1:{port}&connect_timeout=1&read_timeout=1"
                       "&max_attempts=2")  # fmt: skip
    for action, what in [
        (lambda: store.put("job-1/a", b"x"), "job-1/a"),
        (lambda: store.get("job-1/b"), "job-1/b"),
        (lambda: store.keys("job-1/"), "keys under 'job-1/'"),
        (lambda: store.delete_prefix("job-1/"), "keys under 'job-1/'"),
    ]:
        started = time.monotonic()
        with pytest.raises(CheckpointError, match="unreachable") as failed:
            action()
        assert time.monotonic() - started < 5.0
        assert what in str(failed.value) and f"127.0.0.1:{port}" in str(failed.value)
        assert failed.value.__cause__ is not None


@pytest.mark.usefixtures("aws_env")
def test_s3_without_boto3_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "boto3", None)  # import boto3 now raises ImportError
    with pytest.raises(ConfigError, match=r"pip install 'simfleet\[s3\]'"):
        open_store("s3://bucket/prefix")


def test_importing_the_stores_does_not_import_boto3() -> None:
    code = (
        "import sys, simfleet.shared.stores as stores\n"
        "stores.open_store('memory://x').put('job-1/a', b'x')\n"
        "import simfleet.shared.stores.s3\n"
        "print(sorted(name for name in ('boto3', 'botocore', 's3transfer', 'chdb', 'clickhouse_connect')\n"
        "             if name in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------------------------- open_store


def test_open_file_urls_and_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store((tmp_path / "a b").as_uri())
    assert isinstance(absolute, DirectoryStore) and absolute.root == tmp_path / "a b"
    assert absolute.url == (tmp_path / "a b").as_uri()
    assert open_store(f"file://localhost{tmp_path}").root == tmp_path  # type: ignore[attr-defined]
    assert open_store(str(tmp_path / "plain")).root == tmp_path / "plain"  # type: ignore[attr-defined]
    monkeypatch.chdir(tmp_path)
    relative = open_store("runs/checkpoints")
    monkeypatch.chdir("/")
    assert relative.root == tmp_path / "runs" / "checkpoints"  # type: ignore[attr-defined]
    relative.put("job-1/a", b"x")
    assert (tmp_path / "runs" / "checkpoints" / "job-1" / "a").read_bytes() == b"x"


def test_open_memory_url() -> None:
    store = open_store("memory://examples")
    assert isinstance(store, MemoryStore) and store.name == "examples" and store.url == "memory://examples"


@needs_boto3
@pytest.mark.usefixtures("aws_env")
def test_open_s3_urls() -> None:
    from simfleet.shared.stores.s3 import S3Store

    store = open_store("s3://ckpt/fleet/a/?endpoint_url=http://minio:9000&region=eu-west-1&connect_timeout=2.5")
    assert isinstance(store, S3Store)
    assert (store.bucket, store.prefix, store.endpoint_url, store.region) == ("ckpt", "fleet/a", "http://minio:9000",
                                                                               "eu-west-1")  # fmt: skip
    assert store.url == "s3://ckpt/fleet/a?endpoint_url=http://minio:9000&region=eu-west-1"
    assert open_store(store.url).url == store.url
    config = store._client.meta.config
    assert (config.connect_timeout, config.read_timeout) == (2.5, 10.0)
    assert config.retries == {"mode": "standard", "total_max_attempts": 3}
    assert config.s3 == {"addressing_style": "path"}
    bare = open_store("s3://ckpt")
    assert isinstance(bare, S3Store) and (bare.prefix, bare.endpoint_url, bare.url) == ("", None, "s3://ckpt")
    assert bare._client.meta.config.s3 == {"addressing_style": "auto"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "a checkpoint store URL is needed"),
        ("ftp://host/x", "unknown checkpoint store scheme 'ftp'.*known: file://, memory://, s3://"),
        ("s3:bucket", r"expected s3://\.\.\."),
        ("file://otherhost/x", "expected file:///absolute/path"),
        ("file:///tmp/x?mode=1", "takes no query"),
        ("memory://", r"expected memory://<name>"),
        ("memory://x?y=1", "takes no query"),
    ],
)
def test_open_store_url_errors_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


@needs_boto3
@pytest.mark.usefixtures("aws_env")
@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("s3://", "no bucket"),
        ("s3:///prefix", "no bucket"),
        ("s3://bucket:9000/x", "a bucket has no port"),
        ("s3://bucket?endpoint=http://x", "unknown query key 'endpoint'.*known: endpoint_url, region"),
        ("s3://bucket?region=a&region=b", "query key 'region' given twice"),
        ("s3://bucket?region=", "query key 'region' has no value"),
        ("s3://bucket?connect_timeout=soon", "connect_timeout must be a number"),
        ("s3://bucket?read_timeout=0", "timeouts must be positive"),
        ("s3://bucket?max_attempts=0", "max_attempts must be at least 1"),
        ("s3://bucket?addressing_style=dns", "addressing_style must be one of auto, path, virtual"),
        ("s3://bucket?endpoint_url=minio:9000", r"endpoint_url must be http\(s\)://host"),
        ("s3://bucket/a/../b", "bad key prefix"),
        ("s3://bad/bucket/name/../x", "bad key prefix"),
        ("s3://buck%20et", "bad S3 bucket name"),
    ],
)
def test_s3_url_errors_name_the_problem(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        open_store(url)


@pytest.mark.parametrize(
    "url",
    [
        "s3://AKIAEXAMPLE:hunter2secret@bucket/x",
        "s3://bucket?endpoint_url=http://user:hunter2secret@minio:9000",
        "s3://bucket?aws_secret_access_key=hunter2secret",
        "ftp://user:hunter2secret@host/x",
    ],
)
def test_credentials_in_a_store_url_are_refused_and_not_echoed(url: str) -> None:
    with pytest.raises(ConfigError) as refused:
        open_store(url)
    assert "hunter2secret" not in str(refused.value)


def test_the_schemes_listed() -> None:
    assert set(SCHEMES) == {"file", "memory", "s3", "clickhouse+chdb", "clickhouse+http", "clickhouse+https"}


# ------------------------------------------------------------------------------------------------- ClickHouse


def test_clickhouse_store_on_chdb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("clickhouse+chdb://state/ch?table=fleet_blobs")
    assert isinstance(store, ClickHouseStore)
    assert store.url == f"clickhouse+chdb://{tmp_path / 'state' / 'ch'}?table=fleet_blobs"
    store.put("job-1/a", b"\x00'\\x")
    # A second handle on the same chDB path (one path per process) is the same table.
    other = open_store(f"clickhouse+chdb://{tmp_path / 'state' / 'ch'}?table=fleet_blobs")
    assert other.get("job-1/a") == b"\x00'\\x"
    other.close()
    store.close()


def test_clickhouse_url_parsing() -> None:
    assert parse_url("clickhouse+chdb:///var/simfleet/ch") == ("chdb:///var/simfleet/ch", "checkpoint_blobs", 3)
    assert parse_url("clickhouse+https://fleet:pw@ch.example.org:8443/sim?table=blobs&attempts=5") == (
        "https://fleet:pw@ch.example.org:8443/sim",
        "blobs",
        5,
    )


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("clickhouse+chdb://", "bad ClickHouse store URL"),
        ("clickhouse+http://fleet:hunter2secret@:8123/db", "bad ClickHouse store URL"),
        ("clickhouse+http://fleet:hunter2secret@host:99999/db", "bad ClickHouse store URL"),
        ("clickhouse+http://fleet:hunter2secret@host/db?tabel=x", "unknown query key 'tabel'.*known: table, attempts"),
        ("clickhouse+http://fleet:hunter2secret@host/db?table=a;DROP", "table must be a plain identifier"),
        ("clickhouse+chdb:///x?attempts=many", "attempts must be a whole number"),
        ("clickhouse+chdb:///x?attempts=0", "attempts must be at least 1"),
        ("clickhouse+chdb:///x?table=a&table=b", "query key 'table' given twice"),
        ("clickhouse+tcp://host:9000/db", "unknown checkpoint store scheme 'clickhouse\\+tcp'"),
    ],
)
def test_clickhouse_url_errors_name_the_problem_without_the_password(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as refused:
        open_store(url)
    assert "hunter2secret" not in str(refused.value)
    assert refused.value.__cause__ is None or "hunter2secret" not in str(refused.value.__cause__)


def test_clickhouse_server_unreachable_is_a_checkpoint_error_without_the_password() -> None:
    port = free_port()
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="cannot open") as failed:
        open_store(f"clickhouse+http://fleet:hunter2secret@127.0.0.1:{port}/sim?attempts=1")
    assert time.monotonic() - started < 10.0
    assert f"clickhouse+http://fleet@127.0.0.1:{port}/sim?table=checkpoint_blobs" in str(failed.value)
    assert "hunter2secret" not in str(failed.value)
