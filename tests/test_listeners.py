"""What the listeners write: the loss trace, the loss plot, frames and metadata, and a run stopped by stop()."""
import builtins
import json
import warnings

import numpy as np
import pytest
from PIL import Image

from vggnumpy.run import pipeline as api
from vggnumpy import config
from vggnumpy.weights.file import random_weights


def _images():
    rng = np.random.default_rng(0)
    return rng.random((36, 40, 3), dtype=np.float32), rng.random((40, 40, 3), dtype=np.float32)


def _run(**kw):
    content, style = _images()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.UntrainedWeightsWarning)
        return api.stylize(content, [style], size=40, weights=random_weights("vgg19", 0), progress=False,
                           log=lambda m: None, **kw)


@pytest.mark.slow
def test_the_trace_has_every_iteration_term_and_style_layer(tmp_path):
    path = str(tmp_path / "t.json")
    res = _run(scale_iterations=[3, 2], trace=path, style_layers=["relu1_1", "relu2_1"])
    doc = json.load(open(path))
    rows = doc["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5] and doc["interrupted"] == ""
    assert [r["scale"] for r in rows] == [0, 0, 0, 1, 1] and rows[-1]["size"] == [36, 40]
    for r in rows:
        assert set(r["terms"]) == {"content relu4_2", "style relu1_1", "style relu2_1", "tv"}
        assert sum(r["terms"].values()) == pytest.approx(r["loss"], rel=1e-5)   # the terms of the accepted x
    assert all(a["seconds"] <= b["seconds"] and a["evaluations"] < b["evaluations"] for a, b in zip(rows, rows[1:]))
    assert rows == res.trace


@pytest.mark.slow
def test_the_plot_is_a_png_with_one_curve_per_term(tmp_path):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "p.png")
    _run(iterations=4, plot=path)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= 400
        assert np.asarray(im.convert("L")).std() > 10         # axes and lines, not a blank canvas


def test_without_matplotlib_plot_says_how_to_install_it_before_any_work(monkeypatch, tmp_path):
    real = builtins.__import__

    def no_matplotlib(name, *a, **k):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with pytest.raises(config.OptionError, match=r"pip install 'vggnumpy\[plot\]'"):
        _run(iterations=2, plot=str(tmp_path / "p.png"))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_stop_ends_the_run_at_the_next_step_with_the_best_image(tmp_path):
    out = str(tmp_path / "o.png")
    seen = []
    res = _run(output=out, iterations=50, on_step=lambda i, loss, img: seen.append((i, loss)),
               stop=lambda: "SIGINT" if len(seen) >= 3 else "")
    assert res.interrupted == "SIGINT" and res.iterations == 3 and len(seen) == 3
    assert res.loss == pytest.approx(min(loss for _, loss in seen))
    with Image.open(out) as im:
        assert im.info["vggnumpy:interrupted"] == "at iteration 3 of 50 (SIGINT)"


@pytest.mark.slow
def test_print_every_prints_the_terms_of_the_accepted_iterate(tmp_path):
    content, style = _images()
    logs = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", api.UntrainedWeightsWarning)
        api.stylize(content, [style], size=40, weights=random_weights("vgg19", 0), progress=False,
                    log=logs.append, iterations=4, print_every=2)
    lines = [line for line in logs if line.startswith("iteration ")]
    assert [line.split(":")[0] for line in lines] == ["iteration 2", "iteration 4"]
    total = float(lines[-1].split("loss ")[1].split(" ")[0])
    terms = [float(t.rsplit(" ", 1)[1]) for t in lines[-1].split("(")[1].rstrip(")").split(", ")]
    assert sum(terms) == pytest.approx(total, rel=1e-3)
