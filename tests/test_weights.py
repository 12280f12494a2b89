"""Our HDF5 weight schema: round trip, the loader's checks, and the untrained network."""
import h5py
import numpy as np
import pytest

from vggnumpy.weights import file as wmod


def test_round_trip_keeps_everything(tmp_path):
    w = wmod.random_weights("vgg16", seed=2)
    p = str(tmp_path / "w.h5")
    wmod.save(w, p)
    r = wmod.load(p)
    assert r.arch == "vgg16" and not r.trained and r.source == "random:seed=2"
    assert r.convention() == w.convention()
    for n, (k, b) in w.params.items():
        np.testing.assert_array_equal(r.params[n][0], k)
        assert r.params[n][0].dtype == np.float32


def test_random_is_he_initialised_and_seeded():
    a, b, c = wmod.random_weights("vgg19", 1), wmod.random_weights("vgg19", 1), wmod.random_weights("vgg19", 2)
    k = a.params["conv3_1"][0]
    assert k.std() == pytest.approx(np.sqrt(2 / (128 * 9)), rel=0.02)
    np.testing.assert_array_equal(k, b.params["conv3_1"][0])
    assert not np.array_equal(k, c.params["conv3_1"][0])


def _damaged(tmp_path, how):
    p = str(tmp_path / f"{how}.h5")
    wmod.save(wmod.random_weights("vgg16", 0), p)
    with h5py.File(p, "a") as f:
        if how == "missing":
            del f["conv4_2"]
        elif how == "shape":
            del f["conv2_1/weight"]
            f["conv2_1/weight"] = np.zeros((128, 64, 3, 2), np.float32)
        elif how == "nan":
            w = f["conv1_1/weight"][...]
            w[0, 0, 0, 0] = np.nan
            f["conv1_1/weight"][...] = w
        elif how == "format":
            del f.attrs["format"]
        elif how == "dtype":
            del f["conv1_1/bias"]
            f["conv1_1/bias"] = np.zeros(64, np.int32)
    return p


@pytest.mark.parametrize("how,msg", [("missing", "conv4_2 is missing"), ("shape", "conv2_1"), ("nan", "NaN"),
                                     ("format", "not in vggnumpy's weight format"), ("dtype", "dtype")])
def test_loader_rejects_damaged_files(tmp_path, how, msg):
    with pytest.raises(wmod.WeightsError, match=msg):
        wmod.load(_damaged(tmp_path, how))


def test_not_hdf5_and_missing(tmp_path):
    p = tmp_path / "x.h5"
    p.write_bytes(b"\x00" * 100)
    with pytest.raises(wmod.WeightsError, match="x.h5.*not an HDF5"):
        wmod.load(str(p))
    with pytest.raises(wmod.WeightsError, match="no such"):
        wmod.load(str(tmp_path / "none.h5"))


def test_save_is_atomic(tmp_path):
    w = wmod.random_weights("vgg16", 0)
    del w.params["conv1_1"]
    with pytest.raises(wmod.WeightsError):
        wmod.save(w, str(tmp_path / "w.h5"))
    assert list(tmp_path.iterdir()) == []
