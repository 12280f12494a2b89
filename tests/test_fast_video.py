"""`vggnumpy video --model`: each frame painted by a style network, blended with the previous output warped by the
flow where it is consistent; the blend lowers the warping error; bad combinations are refused."""
import os

import numpy as np
import pytest

pytest.importorskip("av")
pytest.importorskip("cv2")
pytestmark = pytest.mark.slow

import clips                                    # benchmarks/clips.py (conftest puts benchmarks/ on the path)
from conftest import shared_image
from vggnumpy.cli.main import main
from vggnumpy.feedforward import model as modelfile
from vggnumpy.files import images
from vggnumpy.nn import transformer as T
from vggnumpy.video import clip as video, flow


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """An untrained style network (its norm shifts perturbed, so its output has texture to flicker)."""
    p = T.init_params(0.25, 3)
    rng = np.random.default_rng(0)
    for k in p:
        if k.endswith(".beta"):
            p[k] = rng.standard_normal(p[k].shape).astype(np.float32)
    path = str(tmp_path_factory.mktemp("m") / "net.h5")
    modelfile.save(modelfile.Model(p, dict(style="noise", iterations=0, iterations_done=0)), path)
    return path


@pytest.fixture(scope="module")
def pan(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("clip") / "pan")
    clips.write_clip(folder, clips.pan_zoom(shared_image("content", "tubingen.jpg"), frames=8, size=96))
    return folder


def frames_of(folder):
    names = sorted(n for n in os.listdir(folder) if n.startswith("frame_"))
    return [images.load_image(os.path.join(folder, n)) for n in names]


def warping_error(inputs, outputs):
    errs = []
    for k in range(1, len(inputs)):
        fwd = flow.dis(inputs[k - 1], inputs[k])
        back = flow.dis(inputs[k], inputs[k - 1])
        mask = flow.consistency(fwd, back)
        errs.append(flow.warping_error(outputs[k - 1], outputs[k], fwd, mask))
    return float(np.mean(errs))


def test_blend_lowers_the_warping_error(pan, model, tmp_path):
    runs = {}
    for b in (0.0, 0.6):
        out = str(tmp_path / f"blend{int(b * 10)}")
        res = video.stylize_video(pan, [], out, model=model, blend=b, size=96, device="cpu", progress=False,
                                  log=lambda m: None)
        assert res.frames == 8 and not res.interrupted
        runs[b] = frames_of(out)
    inputs = frames_of(pan)
    assert len(runs[0.0]) == 8 and runs[0.0][0].shape == inputs[0].shape
    assert np.array_equal(runs[0.0][0], runs[0.6][0])                 # the first frame has nothing to blend with
    e0, e1 = warping_error(inputs, runs[0.0]), warping_error(inputs, runs[0.6])
    assert e1 < 0.6 * e0, (e0, e1)


def test_cli_writes_an_mp4_and_refuses_bad_combinations(pan, model, tmp_path, capsys):
    out = str(tmp_path / "o.mp4")
    assert main(["video", pan, "--model", model, "-s", "64", "-o", out, "--no-progress", "--device", "cpu"]) == 0
    assert os.path.getsize(out) > 0
    style = shared_image("style", "starry_night.jpg")
    for argv, says in ((["video", pan, style, "--model", model], "give no STYLE"),
                       (["video", pan, "--model", model, "--style-weight", "3"], "--style-weight"),
                       (["video", pan], "give at least one style image"),
                       (["video", pan, "--model", str(tmp_path / "none.h5")], "no such style network")):
        code = main(argv + ["-o", str(tmp_path / "x.mp4")])
        err = capsys.readouterr().err
        assert code != 0 and says in err and "Traceback" not in err, err
    assert not os.path.exists(tmp_path / "x.mp4")


def test_video_benchmark_judges_a_network_against_its_own_painting(model):
    """benchmarks/video.py --model: the frames are judged against the painting the network was trained on (not
    always Starry Night), and a network trained on a painting not in ../shared, or no network, is a clear exit."""
    import video as bench                       # benchmarks/video.py
    shared_image("style", "the_scream.jpg")
    assert os.path.basename(bench.painting(None, "the_scream")) == "the_scream.jpg"
    assert os.path.basename(bench.painting(None, "starry_night")) == "starry_night.jpg"
    assert bench.painting(None, None) == bench.STYLE and bench.painting("x.jpg", "the_scream") == "x.jpg"
    with pytest.raises(SystemExit, match="trained on noise.*--style"):
        bench.painting(None, model)
    with pytest.raises(SystemExit, match="--model: nothere: no such style network"):
        bench.painting(None, "nothere")
