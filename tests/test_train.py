"""`vggnumpy train` and `vggnumpy fast` end to end on real photos at tiny sizes (the untrained VGG16 as the loss
network), the model file, resuming, and the bad inputs: each refused with one clear message and nothing written."""
import os
import shutil

import h5py
import numpy as np
import pytest

from conftest import shared_image
from vggnumpy.cli.main import main
from vggnumpy.feedforward import data, model as modelfile
from vggnumpy.feedforward.train import train
from vggnumpy.nn import transformer as T
from vggnumpy.weights.file import random_weights, save

TINY = dict(iterations=4, size=32, batch_size=2, photo_size=64, style_size=64, width=0.125, checkpoint_every=2,
            progress=False, device="cpu")


@pytest.fixture(scope="module")
def w16(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("w16") / "vgg16.h5")
    save(random_weights("vgg16", 0), path)
    return path


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("brad_pitt.jpg", "hoovertowernight.jpg"):
        shutil.copy(shared_image("content", name), folder / name)
    return str(folder)


@pytest.fixture
def starry():
    return shared_image("style", "starry_night.jpg")


def run_train(starry, photos, out, w16, **kw):
    return train(starry, [photos], out, weights=w16, log=lambda m: None, **dict(TINY, **kw))


@pytest.mark.slow
def test_training_lowers_the_loss_and_writes_a_model(starry, photos, w16, tmp_path):
    out = str(tmp_path / "m.h5")
    res = run_train(starry, photos, out, w16, iterations=10, learning_rate=0.01)
    m = modelfile.load(out)
    assert res.iterations == 10 and m.info["iterations_done"] == 10 and len(m.history) == 10
    first, last = np.mean([h[1] for h in m.history[:3]]), np.mean([h[1] for h in m.history[-3:]])
    assert last < 0.9 * first, (first, last)
    assert m.info["style"] == "starry_night.jpg" and len(m.info["style_sha256"]) == 64
    assert m.info["loss_network"]["arch"] == "vgg16" and set(m.info["photos"]) == {"brad_pitt.jpg",
                                                                                   "hoovertowernight.jpg"}
    assert m.width == 0.125 and m.info["seconds"] > 0 and m.adam["t"] == 10


@pytest.mark.slow
def test_a_stopped_run_resumes_to_the_same_weights(starry, photos, w16, tmp_path):
    """4 steps in one go, and 2 + 2 with a stop after the second: the same parameters, bit for bit; then a larger
    -n goes on from the finished model with Adam's state."""
    whole, parts = str(tmp_path / "a.h5"), str(tmp_path / "b.h5")
    run_train(starry, photos, whole, w16)
    calls = iter(["", "SIGINT"])
    res = train(starry, [photos], parts, weights=w16, log=lambda m: None, stop=lambda: next(calls, ""), **TINY)
    assert res.interrupted == "SIGINT" and res.iterations == 2
    res = run_train(starry, photos, parts, w16)
    assert res.iterations == 4
    a, b = modelfile.load(whole), modelfile.load(parts)
    for k in a.params:
        assert np.array_equal(a.params[k], b.params[k]), k
    assert [h[1] for h in a.history] == [h[1] for h in b.history]
    res = run_train(starry, photos, whole, w16, iterations=5)
    assert res.iterations == 5 and modelfile.load(whole).adam["t"] == 5


@pytest.mark.slow
def test_other_settings_do_not_resume(starry, photos, w16, tmp_path):
    out = str(tmp_path / "m.h5")
    run_train(starry, photos, out, w16, iterations=1)
    before = open(out, "rb").read()
    with pytest.raises(ValueError, match="other settings .*style_weight"):
        run_train(starry, photos, out, w16, style_weight=3.0)
    assert open(out, "rb").read() == before


def test_crops_are_deterministic_flipped_and_in_range(photos):
    pics = data.load_photos(data.photo_files([photos]), 64, 128)
    a, b = data.batch(pics, 5, 64, 6, 128, 0), data.batch(pics, 5, 64, 6, 128, 0)
    assert a.shape == (6, 3, 64, 64) and np.array_equal(a, b) and 0 <= a.min() and a.max() <= 1
    assert not np.array_equal(a, data.batch(pics, 6, 64, 6, 128, 0))


def test_model_file_round_trip_and_refusals(tmp_path, wfile):
    p = T.init_params(0.25, 1)
    path = str(tmp_path / "m.h5")
    modelfile.save(modelfile.Model(p, dict(style="x.jpg", iterations=1, iterations_done=1)), path)
    m = modelfile.load(path)
    assert all(np.array_equal(m.params[k], p[k]) for k in p) and m.adam is None
    with pytest.raises(ValueError, match="VGG weights file .*not a style network"):
        modelfile.load(wfile)
    other = str(tmp_path / "other.h5")
    with h5py.File(other, "w") as f:
        f["x"] = np.zeros(3)
    with pytest.raises(ValueError, match="not a vggnumpy style network"):
        modelfile.load(other)
    with h5py.File(path, "a") as f:
        del f["params/res2_1.w"]
    with pytest.raises(ValueError, match="misses params/res2_1.w"):
        modelfile.load(path)
    with pytest.raises(ValueError, match="no such style network"):
        modelfile.resolve("van_gogh")


@pytest.mark.slow
def test_fast_cli_paints_with_a_trained_model(starry, photos, w16, tmp_path, capsys):
    model = str(tmp_path / "m.h5")
    run_train(starry, photos, model, w16)
    out = str(tmp_path / "out.png")
    content = shared_image("content", "tubingen.jpg")
    assert main(["fast", model, content, "-s", "64", "-o", out, "--device", "cpu"]) == 0
    from PIL import Image
    assert Image.open(out).size == (64, 48)
    folder = tmp_path / "many"
    folder.mkdir()
    assert main(["fast", model, content, starry, "-s", "40", "-o", str(folder), "--original-colors"]) == 0
    assert sorted(os.listdir(folder)) == ["starry_night.png", "tubingen.png"]


def cli_error(argv, capsys):
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    return err


def test_bad_training_input_is_refused(starry, photos, w16, tmp_path, capsys):
    out = str(tmp_path / "m.h5")
    base = ["train", "--photos", photos, "-o", out, "--weights", w16, "-s", "32", "-n", "1", "--no-progress"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no images" in cli_error(["train", starry, "--photos", str(empty)] + base[3:], capsys)
    assert "smaller than the 2000x2000 crops" in cli_error(["train", starry] + base[1:5] + ["-s", "2000"], capsys)
    not_image = tmp_path / "style.jpg"
    not_image.write_text("not an image")
    assert "style.jpg" in cli_error(["train", str(not_image)] + base[1:], capsys)
    assert "end the name in .h5" in cli_error(["train", starry, "--photos", photos, "-o", "m.png"], capsys)
    other = str(tmp_path / "other.h5")                      # an existing file of another kind as -o: refused
    shutil.copy(w16, other)
    assert "VGG weights file" in cli_error(["train", starry] + base[1:3] + ["-o", other] + base[5:], capsys)
    assert open(other, "rb").read() == open(w16, "rb").read()
    assert "would overwrite an input" in cli_error(["train", starry] + base[1:3] + ["-o", w16] + base[5:], capsys)
    assert not os.path.exists(out)


def test_bad_fast_input_is_refused(tmp_path, wfile, capsys):
    content = shared_image("content", "tubingen.jpg")
    assert "VGG weights file" in cli_error(["fast", wfile, content, "-o", str(tmp_path / "o.png")], capsys)
    assert "no such style network" in cli_error(["fast", "picasso", content], capsys)
    assert "give a MODEL" in cli_error(["fast"], capsys)
    assert "two inputs" in cli_error(["fast", wfile, content, content, "-o", str(tmp_path)], capsys)
    assert not os.listdir(tmp_path)
