"""No key of a directory store names a file outside its root, even through a symbolic link inside the root."""

from __future__ import annotations

import pytest

from simfleet.shared.errors import ConfigError
from simfleet.shared.stores.directory import DirectoryStore


@pytest.mark.parametrize("key", ["../../x/blob", "job/../../x", "/etc/x", "./x", "job//x", "job\\..\\x"])
def test_a_key_with_a_path_of_its_own_is_refused_before_any_io(tmp_path, key):
    root = tmp_path / "area" / "store"
    store = DirectoryStore(root)
    with pytest.raises(ConfigError, match="bad blob key"):
        store.put(key, b"payload")
    assert not (tmp_path / "area").exists()  # not even the root was created


def test_a_job_folder_linked_outside_the_root_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    store = DirectoryStore(tmp_path / "store")
    store.put("honest/blob", b"kept")
    (tmp_path / "store" / "linked").symlink_to(outside, target_is_directory=True)
    for action in (lambda: store.put("linked/blob", b"x"), lambda: store.get("linked/blob"),
                   lambda: store.delete("linked/blob"), lambda: store.keys("linked/"),
                   lambda: store.delete_prefix("linked/")):  # fmt: skip
        with pytest.raises(ConfigError, match="outside the store's root"):
            action()
    assert list(outside.iterdir()) == []
    assert store.get("honest/blob") == b"kept"
