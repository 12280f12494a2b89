"""Every converter on synthetic files laid out like the real releases: identical weights, identical features, safe \
pickles."""
import os
import shutil

import numpy as np
import pytest

import weightfiles as wf
from vggnumpy.weights import file as wmod
from vggnumpy.cli.main import main
from vggnumpy.weights.convert import convert_file, detect
from vggnumpy.nn.network import Network
from vggnumpy.nn.preprocess import preprocess_forward

LAYERS = ["relu1_1", "relu2_2", "relu3_1", "relu4_2", "relu5_1"]

# name -> (writer, format detect() must report, convention of the source)
BUILDERS = {
    "keras-v0.1": (lambda p, P: wf.write_keras(p, P, "vgg19", "v0.1"), "keras", wmod.CAFFE),
    "keras-2": (lambda p, P: wf.write_keras(p, P, "vgg19", "keras2"), "keras", wmod.CAFFE),
    "torchvision-legacy": (lambda p, P: wf.write_torch_legacy(p, wf.torchvision_sd(P), shared_bias=True,
                                                              rebuild="_rebuild_tensor"),
                           "torch-legacy", wmod.TORCHVISION),
    "torchvision-zip": (lambda p, P: wf.write_torch_zip(p, wf.torchvision_sd(P)), "torch-zip", wmod.TORCHVISION),
    "vgg_conv-legacy": (lambda p, P: wf.write_torch_legacy(p, wf.paper_sd(P)), "torch-legacy", wmod.CAFFE),
    "caffe-v1": (lambda p, P: wf.write_caffe(p, P, "vgg19", "v1", unpacked=("conv1_2",)), "caffe", wmod.CAFFE),
    "caffe-new": (lambda p, P: wf.write_caffe(p, P, "vgg19", "new", netname="VGG_normalised"), "caffe", wmod.CAFFE),
    "matconvnet": (lambda p, P: wf.write_matconvnet(p, P), "matconvnet", wmod.MATCONVNET),
}
SAME_NETWORK = [n for n, (_, _, c) in BUILDERS.items() if c is not wmod.TORCHVISION]   # one BGR network


@pytest.fixture(scope="module")
def base():
    return wf.base_params("vgg19")


@pytest.fixture(scope="module")
def files(base, tmp_path_factory):
    """Each format written once at full VGG-19 shapes, under names that say nothing about the format."""
    d = tmp_path_factory.mktemp("weightfiles")
    out = {}
    for i, (name, (write, _, _)) in enumerate(BUILDERS.items()):
        out[name] = str(d / f"file{i}.bin")
        write(out[name], base)
    return out


@pytest.fixture(scope="module")
def converted(files):
    return {name: convert_file(path) for name, path in files.items()}


@pytest.fixture(scope="module")
def image():
    return np.random.default_rng(7).random((3, 32, 32), dtype=np.float32)


def features(w, img, layers=LAYERS):
    x, _ = preprocess_forward(img, w)
    return Network(w).forward(x, layers)[0]


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.slow
def test_format_detected_by_content(files, name):
    assert detect(files[name]) == BUILDERS[name][1]


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.slow
def test_converted_weights_identical(base, converted, name):
    w = converted[name]
    assert w.arch == "vgg19" and w.trained and len(w.source_sha256) == 64
    assert w.convention() == BUILDERS[name][2]
    for layer, (k, b) in base.items():
        got_k, got_b = w.params[layer]
        assert got_k.dtype == np.float32 and got_k.flags.c_contiguous
        # MatConvNet's conv1_1 reads RGB: the same kernel with its input channels reversed; nothing else differs.
        want = k[:, ::-1] if (name == "matconvnet" and layer == "conv1_1") else k
        np.testing.assert_array_equal(got_k, want, err_msg=f"{name} {layer}")
        np.testing.assert_array_equal(got_b, b, err_msg=f"{name} {layer} bias")


@pytest.mark.slow
def test_every_file_gives_the_same_features(converted, image):
    ref = features(converted["caffe-v1"], image)
    for name in SAME_NETWORK:
        got = features(converted[name], image)
        for layer in LAYERS:
            np.testing.assert_allclose(got[layer], ref[layer], rtol=1e-4, atol=1e-4 * np.abs(ref[layer]).max(),
                                       err_msg=f"{name} {layer}")


@pytest.mark.slow
def test_caffe_and_matconvnet_differ_in_channel_order_only(converted, image):
    c, m = converted["caffe-v1"], converted["matconvnet"]
    assert (c.channel_order, m.channel_order) == ("BGR", "RGB")
    assert not np.array_equal(c.params["conv1_1"][0], m.params["conv1_1"][0])
    np.testing.assert_array_equal(m.params["conv1_1"][0][:, ::-1], c.params["conv1_1"][0])
    a, b = features(c, image, ["conv1_1"])["conv1_1"], features(m, image, ["conv1_1"])["conv1_1"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)


@pytest.mark.slow
def test_torchvision_features_match_torch(converted, image):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    w = converted["torchvision-zip"]
    mean, std = torch.tensor(w.mean).view(3, 1, 1), torch.tensor(w.std).view(3, 1, 1)
    h = ((torch.from_numpy(image) - mean) / std)[None]              # torchvision's own preprocessing
    for name in ("conv1_1", "conv1_2"):
        k, b = w.params[name]
        h = F.relu(F.conv2d(h, torch.from_numpy(k), torch.from_numpy(b), padding=1))
    h = F.max_pool2d(h, 2)
    k, b = w.params["conv2_1"]
    h = F.relu(F.conv2d(h, torch.from_numpy(k), torch.from_numpy(b), padding=1))
    ours = features(w, image, ["relu2_1"])["relu2_1"]
    np.testing.assert_allclose(ours, h.numpy(), rtol=1e-4, atol=1e-4)


def test_torch_written_files_read_without_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from vggnumpy.weights.convert import torchpth
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    sd = {"a": torch.randn(4, 3, 3, 3, generator=g), "b.half": torch.randn(7, generator=g).half(),
          "c.t": base.t(), "d.view": base[2:, 1:4], "e.double": torch.randn(3, 2, generator=g, dtype=torch.float64),
          "f.param": torch.nn.Parameter(torch.randn(5, generator=g))}
    for legacy in (False, True):
        p = str(tmp_path / f"t{legacy}.bin")
        torch.save(sd, p, _use_new_zipfile_serialization=not legacy)
        assert detect(p) == ("torch-legacy" if legacy else "torch-zip")
        got = (torchpth.read_legacy if legacy else torchpth.read_zip)(p)
        for k, v in sd.items():
            np.testing.assert_array_equal(got[k], v.detach().float().numpy(), err_msg=f"{k} legacy={legacy}")
    # Our hand-written files load in real torch too (weights_only, its own safe loader).
    p = str(tmp_path / "ours.pth")
    wf.write_torch_legacy(p, {"x.weight": np.arange(6, dtype=np.float32).reshape(2, 3)})
    np.testing.assert_array_equal(torch.load(p, weights_only=True)["x.weight"].numpy(),
                                  np.arange(6, dtype=np.float32).reshape(2, 3))


@pytest.mark.slow
def test_keras_vgg16_and_a_keras_model_file(tmp_path):
    P = wf.base_params("vgg16", seed=2)
    p = str(tmp_path / "k16")
    wf.write_keras(p, P, "vgg16", "v0.1")
    w = convert_file(p)
    assert w.arch == "vgg16" and w.convention() == wmod.CAFFE
    np.testing.assert_array_equal(w.params["conv5_3"][0], P["conv5_3"][0])
    t = str(tmp_path / "tv16")
    wf.write_torch_zip(t, wf.torchvision_sd(P, "vgg16"))
    w2 = convert_file(t)
    assert w2.arch == "vgg16"
    np.testing.assert_array_equal(w2.params["conv4_1"][0], P["conv4_1"][0])


def test_nin_caffemodel_converts_and_runs(tmp_path):
    P = wf.base_params("nin", seed=3)
    p = str(tmp_path / "nin")
    wf.write_caffe(p, P, "nin", "v1", netname="nin_imagenet", unpacked=("cccp1",))
    assert detect(p) == "caffe"
    w = convert_file(p)
    assert w.arch == "nin" and w.channel_order == "BGR"
    for name, (k, b) in P.items():
        np.testing.assert_array_equal(w.params[name][0], k)
    img = np.random.default_rng(1).random((3, 71, 71), dtype=np.float32)
    feats = features(w, img, ["relu0", "relu3", "relu7", "relu12"])
    # 71 -> conv1 11/4 -> 16 -> ceil-mode pools 3/2: 8 -> 4 -> 2 (floor mode would give 7, 3, 1).
    assert feats["relu0"].shape == (1, 96, 16, 16) and feats["relu3"].shape == (1, 256, 8, 8)
    assert feats["relu12"].shape == (1, 1000, 2, 2)
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x, _ = preprocess_forward(img, w)
    h = torch.from_numpy(np.ascontiguousarray(x))
    for name, kind, prm in __import__("vggnumpy.nn.arch", fromlist=["x"]).get_table("nin"):
        if kind == "conv":
            h = F.conv2d(h, torch.from_numpy(P[name][0]), torch.from_numpy(P[name][1]), stride=prm["stride"],
                         padding=prm["pad"])
        elif kind == "relu":
            h = F.relu(h)
        else:
            h = F.max_pool2d(h, 3, 2, ceil_mode=True)
    np.testing.assert_allclose(feats["relu12"], h.numpy(), rtol=1e-3, atol=1e-3 * float(h.abs().max()))


# ------------------------------------------------------------------ bad files


@pytest.mark.parametrize("name", list(BUILDERS))
@pytest.mark.slow
def test_truncated_files_are_refused(files, tmp_path, name):
    src = files[name]
    p = str(tmp_path / "cut.bin")
    with open(src, "rb") as f:
        data = f.read()
    with open(p, "wb") as f:
        f.write(data[:len(data) * 2 // 3])
    with pytest.raises(wmod.WeightsError, match="cut.bin"):
        convert_file(p)


@pytest.mark.parametrize("payload", [b"", b"hello, I am a text file\n" * 10, bytes(range(256)) * 8,
                                     b"PK\x03\x04garbage"])
def test_unknown_or_empty_files(tmp_path, payload):
    p = str(tmp_path / "weird.pth")
    with open(p, "wb") as f:
        f.write(payload)
    with pytest.raises(wmod.WeightsError, match="weird.pth"):
        convert_file(p)


@pytest.mark.slow
def test_missing_layer_wrong_shape_nan(base, tmp_path):
    p = str(tmp_path / "missing")
    wf.write_keras(p, base, "vgg19", "keras2", drop=("block3_conv4",))
    with pytest.raises(wmod.WeightsError, match="missing.*conv3_4 is missing"):
        convert_file(p)
    bad = dict(base)
    bad["conv2_1"] = (base["conv2_1"][0][:, :, :, :2], base["conv2_1"][1])
    p = str(tmp_path / "shape")
    wf.write_caffe(p, bad, "vgg19", "new")
    with pytest.raises(wmod.WeightsError, match="shape.*conv2_1"):
        convert_file(p)
    nan = dict(base)
    k = base["conv4_2"][0].copy()
    k[1, 2, 0, 0] = np.nan
    nan["conv4_2"] = (k, base["conv4_2"][1])
    p = str(tmp_path / "nan")
    wf.write_torch_zip(p, wf.paper_sd(nan))
    with pytest.raises(wmod.WeightsError, match="nan.*conv4_2.*NaN"):
        convert_file(p)


HOSTILE = [("legacy", lambda m: wf.hostile_legacy("os", "system", f"touch {m}")),
           ("plain", lambda m: wf.hostile_pickle("posix", "system", f"touch {m}")),
           ("builtins", lambda m: wf.hostile_pickle("builtins", "exec", f"open({str(m)!r}, 'w')")),
           ("zip", None)]


@pytest.mark.parametrize("kind,make", HOSTILE)
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, monkeypatch, kind, make):
    marker = tmp_path / "pwned"
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))
    p = str(tmp_path / "evil.pth")
    if make is None:
        wf.write_torch_zip(p, {"x.weight": np.zeros(3, np.float32)},
                           data_pkl=wf.hostile_pickle("os", "system", f"touch {marker}"))
    else:
        with open(p, "wb") as f:
            f.write(make(marker))
    with pytest.raises(wmod.WeightsError, match=r"evil.pth.*refused.*(os|posix|builtins)\.(system|exec)"):
        convert_file(p)
    assert not marker.exists() and calls == []
    assert main(["weights", "convert", p, "-o", str(tmp_path / "out.h5")]) == 1
    assert not marker.exists() and not (tmp_path / "out.h5").exists()


def test_tensor_outside_its_storage_is_refused(tmp_path):
    obj, storages = wf._state({"conv1_1.weight": np.zeros(4, np.float32)})
    obj["conv1_1.weight"].shape = (1000,)                     # claims more than the storage holds
    p = str(tmp_path / "oob.pth")
    with open(p, "wb") as f:
        f.write(wf.legacy_bytes(obj, storages))
    with pytest.raises(wmod.WeightsError, match="oob.pth.*conv1_1.weight"):
        convert_file(p)


# ------------------------------------------------------------------ commands


@pytest.mark.slow
def test_cli_convert_info_list(files, tmp_path, capsys):
    out = str(tmp_path / "w.h5")
    assert main(["weights", "convert", files["matconvnet"], "-o", out]) == 0
    w = wmod.load(out)
    assert w.channel_order == "RGB" and w.mean == pytest.approx(wf.MCN_MEAN)
    assert main(["weights", "info", out]) == 0
    text = capsys.readouterr().out
    assert "conv5_4" in text and "RGB" in text and w.source_sha256 in text
    assert main(["weights", "info", files["keras-2"]]) == 0
    assert "not converted yet" in capsys.readouterr().out
    assert main(["weights", "convert", files["caffe-v1"]]) == 0             # into the cache by default
    assert main(["weights", "list"]) == 0
    text = capsys.readouterr().out
    assert "file5.h5" in text and "vgg19-keras" in text and "vgg19-matconvnet" in text
    assert main(["weights", "convert", str(tmp_path / "nothing.pth")]) == 1
    broken = str(tmp_path / "broken")
    shutil.copy(files["caffe-new"], broken)
    with open(broken, "r+b") as f:
        f.truncate(os.path.getsize(broken) // 2)
    bad_out = tmp_path / "bad.h5"
    assert main(["weights", "convert", broken, "-o", str(bad_out)]) == 1
    assert list(p.name for p in tmp_path.iterdir() if p.name.startswith("bad")) == []


@pytest.mark.slow
def test_convention_override(files):
    w = convert_file(files["torchvision-zip"], convention="caffe")
    assert w.convention() == wmod.CAFFE
