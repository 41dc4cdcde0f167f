"""Labs sharing the image cache build each thing once (lab/cache_lock.py, issue 23): a second
builder waits for the first, then finds the thing built and does not build or remove it."""
import threading
import time

import pytest

from lab import cache_lock, image
from lab.errors import LabError


def test_a_second_holder_waits_until_the_first_is_done(tmp_path):
    with cache_lock.held(tmp_path, "bookworm-x"):
        with pytest.raises(LabError, match="another lab building bookworm-x"):
            with cache_lock.held(tmp_path, "bookworm-x", timeout=0.5):
                pass
        with cache_lock.held(tmp_path, "trixie-x", timeout=0.5):  # another item: no wait
            pass
    with cache_lock.held(tmp_path, "bookworm-x", timeout=0.5):  # released: it gets it
        pass


def test_an_image_another_lab_built_while_we_waited_is_used_not_rebuilt(tmp_path, monkeypatch):
    built = []

    def build(cache_dir, suite, flavor):
        built.append(suite)
        final = image.image_dir(cache_dir, suite, flavor)
        (final / "rootfs").mkdir(parents=True)
        (final / "complete").write_text("now\n")

    monkeypatch.setattr(image, "_build", build)
    name = image.image_name("bookworm")
    with cache_lock.held(tmp_path, name):  # the other lab is building
        waiter = threading.Thread(target=image.ensure_image, args=(tmp_path, "bookworm"))
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and built == []  # waits on the lock
        build(tmp_path, "bookworm", image.DEFAULT_FLAVOR)  # the other lab's build ends
    waiter.join(10)
    assert not waiter.is_alive() and built == ["bookworm"]  # found it built: no second build
