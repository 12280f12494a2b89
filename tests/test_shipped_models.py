"""The style networks shipped inside the package: each is a finished model trained for its painting through the
pretrained loss network, small enough to ship, named by --list and chosen by name by `vggnumpy fast`."""
import hashlib
import os

import pytest
from PIL import Image

from conftest import shared_image
from vggnumpy.cli.main import main
from vggnumpy.feedforward import model as modelfile

EXPECTED = ("starry_night", "the_scream")
MAX_BYTES = 8 * 10 ** 6               # the limit: at most 8 MB each


def test_the_expected_models_are_shipped():
    assert set(EXPECTED) <= set(modelfile.shipped())


@pytest.mark.parametrize("name", EXPECTED)
def test_a_shipped_model_is_finished_small_and_trained_for_its_painting(name):
    path = modelfile.shipped()[name]
    assert os.path.getsize(path) <= MAX_BYTES
    info = modelfile.load(path).info
    assert info["iterations_done"] == info["iterations"]
    assert info["loss_network"]["trained"] is True
    with open(shared_image("style", f"{name}.jpg"), "rb") as f:
        assert info["style_sha256"] == hashlib.sha256(f.read()).hexdigest()
    held_out = {"tubingen.jpg", "golden_gate.jpg"}         # benchmarks/quality.py judges on these
    assert not held_out & set(info["photos"])


def test_list_names_each_shipped_model_and_fast_takes_it_by_name(tmp_path, capsys, monkeypatch):
    assert main(["fast", "--list"]) == 0
    listed = [line.split(":")[0] for line in capsys.readouterr().out.splitlines()]
    assert set(EXPECTED) <= set(listed)
    monkeypatch.chdir(tmp_path)                             # no file of that name here: the name picks the model
    out = str(tmp_path / "out.png")
    assert main(["fast", EXPECTED[0], shared_image("content", "tubingen.jpg"), "-s", "96", "-o", out,
                 "--device", "cpu"]) == 0
    assert Image.open(out).size == (96, 72)
