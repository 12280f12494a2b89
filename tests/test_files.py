"""Files we write: the mode a plain open() gives under the umask, atomic replacement, no temporary file left."""
import os
import stat

import numpy as np
import pytest

from vggnumpy.files import images
from vggnumpy.weights import file as weights


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set a umask for one test and restore the old one."""
    old = os.umask(0o022)
    yield lambda m: os.umask(m)
    os.umask(old)


def _writers(tmp_path):
    img = np.full((8, 8, 3), 0.5, np.float32)
    w = weights.random_weights("vgg16", 0)
    return [(tmp_path / "a.png", lambda p: images.save_image(str(p), img)),
            (tmp_path / "a.jpg", lambda p: images.save_image(str(p), img)),
            (tmp_path / "a.gif", lambda p: images.save_gif(str(p), [img, img])),
            (tmp_path / "w.h5", lambda p: weights.save(w, str(p)))]


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o002])
def test_new_files_get_the_umask_mode(tmp_path, umask, mask):
    umask(mask)
    for path, write in _writers(tmp_path):
        write(path)
        assert _mode(path) == 0o666 & ~mask, path
    assert sorted(os.listdir(tmp_path)) == ["a.gif", "a.jpg", "a.png", "w.h5"]     # no temporary file left


def test_an_existing_file_keeps_its_mode(tmp_path, umask):
    umask(0o077)
    for path, write in _writers(tmp_path):
        path.write_bytes(b"old")
        os.chmod(path, 0o644)
        write(path)
        assert _mode(path) == 0o644, path
        assert path.read_bytes() != b"old"


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "a.png"
    path.write_bytes(b"old")

    class Boom(BaseException):
        pass

    from vggnumpy.files import paths
    with pytest.raises(Boom):
        with paths.atomic_write(str(path)) as tmp:
            open(tmp, "wb").write(b"half")
            raise Boom()
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["a.png"]
