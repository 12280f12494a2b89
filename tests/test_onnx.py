"""ONNX VGG exports (tf2onnx/Keras, the ONNX zoo, torch.onnx), written by our own protobuf writer: read without onnx."""
import os
import subprocess
import sys

import numpy as np
import pytest

import onnxfiles as of
import weightfiles as wf
from vggnumpy.nn import arch as archmod
from vggnumpy.weights import file as wmod
from vggnumpy.cli.main import main
from vggnumpy.weights.convert import convert_file, detect

TYPED = {"conv1_1": "float-unpacked", "conv1_2": "double", "conv2_1": "double-unpacked", "conv2_2": "f16-int32",
         "conv3_1": "f16", "conv3_2": "bf16", "conv3_3": "float"}        # the rest: raw FLOAT
# name -> (vgg() options, convention the converter must give)
FULL = {
    "tf2onnx": (dict(layout="tf2onnx"), wmod.CAFFE),
    "tf2onnx-constant-add": (dict(layout="tf2onnx", via="constant", bias="add"), wmod.CAFFE),
    "zoo-typed": (dict(layout="zoo", storage=TYPED), wmod.TORCHVISION),
    "zoo-nobias": (dict(layout="zoo", storage="float", bias="none"), wmod.TORCHVISION),
    "torch-external": (dict(layout="torch", storage="external", via="identity"), wmod.TORCHVISION),
}


def write(path, params, arch="vgg16", **opts):
    g = of.vgg(params, arch, **opts)
    producer, version = of.PRODUCERS[opts.get("layout", "zoo")]
    g.write(str(path), producer=producer, version=version)
    return str(path)


def tiny(arch="vgg16"):
    """Two channels a layer: enough for every check made before the shapes are compared."""
    return {name: (np.ones((2, 2, 3, 3), np.float32), np.zeros(2, np.float32)) for name, _ in
            archmod.conv_layers(arch)}


@pytest.fixture(scope="module")
def base():
    return wf.base_params("vgg16")


@pytest.fixture(scope="module")
def files(base, tmp_path_factory):
    """Each layout at full VGG16 size, once, in a folder of its own (external data lies beside its model)."""
    out = {}
    for name, (opts, _) in FULL.items():
        out[name] = write(tmp_path_factory.mktemp(name) / "model.onnx", base, **opts)
    return out


@pytest.fixture(scope="module")
def converted(files):
    return {name: convert_file(path) for name, path in files.items()}


def expected(base, name):
    opts = FULL[name][0]
    storage = opts.get("storage", "raw")
    out = {}
    for layer, (k, b) in base.items():
        s = storage.get(layer, "raw") if isinstance(storage, dict) else storage
        out[layer] = (of.stored(k, s), of.stored(b, s) * (opts.get("bias") != "none"))
    return out


@pytest.mark.parametrize("name", list(FULL))
@pytest.mark.slow
def test_detected_by_content(files, name):
    assert detect(files[name]) == "onnx"


@pytest.mark.parametrize("name", list(FULL))
@pytest.mark.slow
def test_converted_weights_identical(base, converted, name):
    w = converted[name]
    assert w.arch == "vgg16" and w.trained and w.extra["source_format"] == "ONNX"
    assert w.convention() == FULL[name][1]
    assert w.description.startswith("pretrained vgg16 converted from ONNX file model.onnx")
    for layer, (k, b) in expected(base, name).items():
        got_k, got_b = w.params[layer]
        assert got_k.dtype == np.float32 and got_k.flags.c_contiguous
        np.testing.assert_array_equal(got_k, k, err_msg=f"{name} {layer}")
        np.testing.assert_array_equal(got_b, b, err_msg=f"{name} {layer} bias")


@pytest.mark.slow
def test_description_and_convention_override(files, converted):
    assert converted["tf2onnx"].description.endswith("(tf2onnx 1.17.0)")
    assert converted["torch-external"].description.endswith("(pytorch 2.1.0)")
    assert convert_file(files["tf2onnx"], convention="torchvision").convention() == wmod.TORCHVISION
    assert convert_file(files["zoo-nobias"], convention="caffe").convention() == wmod.CAFFE


@pytest.mark.slow
def test_vgg19_by_count(tmp_path):
    P = wf.base_params("vgg19", seed=1)
    p = write(tmp_path / "vgg19.onnx", P, "vgg19", layout="zoo")
    w = convert_file(p)
    assert w.arch == "vgg19" and w.convention() == wmod.TORCHVISION
    for layer, (k, b) in P.items():
        np.testing.assert_array_equal(w.params[layer][0], k)
        np.testing.assert_array_equal(w.params[layer][1], b)
    with pytest.raises(wmod.WeightsError, match="vgg19.onnx.*16 Conv nodes, but vgg16 has 13"):
        convert_file(p, arch="vgg16")


@pytest.mark.parametrize("name", ["tf2onnx", "zoo-typed"])
@pytest.mark.slow
def test_features_match_onnxruntime(files, converted, name):
    """onnxruntime runs our writer's graph to pool5: the weights as read give the same features."""
    ort = pytest.importorskip("onnxruntime")
    from vggnumpy.nn.network import Network
    from vggnumpy.nn.preprocess import preprocess_forward
    w = converted[name]
    img = np.random.default_rng(7).random((3, 32, 32), dtype=np.float32)
    x, _ = preprocess_forward(img, w)                                       # (1, 3, 32, 32)
    ours = Network(w).forward(x, ["pool5"])[0]["pool5"]                     # (1, 512, 1, 1)
    sess = ort.InferenceSession(files[name], providers=["CPUExecutionProvider"])
    feed = np.ascontiguousarray(x.transpose(0, 2, 3, 1) if name == "tf2onnx" else x)
    theirs = sess.run(["pool4"], {sess.get_inputs()[0].name: feed})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * np.abs(theirs).max())


@pytest.mark.slow
def test_reading_imports_no_onnx(files):
    code = ("import sys; from vggnumpy.weights.convert import convert_file; convert_file(sys.argv[1]); "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('onnx', 'onnxruntime', 'google')]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code, files["tf2onnx"]], check=True)


@pytest.mark.slow
def test_caffe_files_stay_caffe(tmp_path, files):
    P = tiny("vgg19")
    for style in ("v1", "new"):
        p = str(tmp_path / f"caffe-{style}")
        wf.write_caffe(p, P, "vgg19", style, unpacked=("conv1_2",))
        assert detect(p) == "caffe"
    p = str(tmp_path / "nin")
    wf.write_caffe(p, {n: (np.ones((2, 2, 1, 1), np.float32), np.zeros(2, np.float32)) for n, _ in
                       archmod.conv_layers("nin")}, "nin", "v1", netname="nin_imagenet")
    assert detect(p) == "caffe"


# ------------------------------------------------------------------ bad files


def cut(src, dst, keep):
    with open(src, "rb") as f:
        data = bytearray(f.read())
    with open(dst, "wb") as f:
        f.write(keep(data))
    return str(dst)


@pytest.mark.slow
def test_truncated(files, tmp_path):
    p = cut(files["tf2onnx"], tmp_path / "cut.onnx", lambda d: d[:len(d) * 2 // 3])
    assert detect(p) == "onnx"
    with pytest.raises(wmod.WeightsError, match="cut.onnx: damaged ONNX.*truncated"):
        convert_file(p)


def test_garbled(tmp_path):
    p = write(tmp_path / "good.onnx", tiny(), layout="tf2onnx")

    def garble(d):
        i = d.index(b"block3_conv1")
        d[i - 8:i + 200] = b"\xff" * 208
        return d
    g = cut(p, tmp_path / "garbled.onnx", garble)
    with pytest.raises(wmod.WeightsError, match="garbled.onnx: damaged ONNX protobuf"):
        convert_file(g)


def test_batch_normalised(tmp_path):
    p = write(tmp_path / "vgg16-bn.onnx", tiny(), layout="zoo", bn=True)
    with pytest.raises(wmod.WeightsError, match="vgg16-bn.onnx: a batch-normalised VGG.*BatchNormalization.*plain"):
        convert_file(p)


@pytest.mark.parametrize("change,message", [
    (dict(params={"conv3_2": np.ones((2, 2, 1, 1), np.float32)}), r"conv3_2/Conv.*kernel \[1, 1\]"),
    (dict(attrs={"conv2_1": dict(strides=[2, 2])}), r"conv2_1/Conv.*strides \[2, 2\]"),
    (dict(attrs={"conv1_2": dict(pads=None)}), r"conv1_2/Conv.*pads \[0, 0, 0, 0\]"),
    (dict(attrs={"conv4_1": dict(dilations=[2, 2])}), r"conv4_1/Conv.*dilations \[2, 2\]"),
    (dict(attrs={"conv5_1": dict(group=2)}), r"conv5_1/Conv.*group 2"),
])
def test_not_a_plain_vgg_conv(tmp_path, change, message):
    P = tiny()
    for layer, k in change.get("params", {}).items():
        P[layer] = (k, P[layer][1])
    p = write(tmp_path / "odd.onnx", P, layout="zoo", attrs=change.get("attrs"))
    with pytest.raises(wmod.WeightsError, match="odd.onnx: not a plain VGG.*" + message):
        convert_file(p)


def test_same_padding_is_a_pad_of_one(tmp_path):
    p = write(tmp_path / "same.onnx", tiny(), layout="zoo",
              attrs={f"conv{b}_1": dict(pads=None, auto_pad="SAME_UPPER") for b in range(1, 6)})
    with pytest.raises(wmod.WeightsError, match=r"same.onnx: layer conv1_1 has kernel \(2, 2, 3, 3\)"):
        convert_file(p)                                     # past the conv checks, stopped by the shapes


def small_graph(ops):
    """input -> each (op, constant or None[, attributes]) in turn: for the trunk checks, made before the counting."""
    g = of.Graph()
    g.inputs.append(of.value_info("data", [1, 3, 8, 8]))
    x = "data"
    for i, (op, const, *attrs) in enumerate(ops):
        inputs = [x] if const is None else [x, g.init(f"c{i}", const)]
        if op == "Conv":
            inputs = [x, g.init(f"w{i}", np.ones((3, 3, 3, 3))), g.init(f"b{i}", np.zeros(3))]
            x = g.node("Conv", inputs, [f"y{i}"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
        else:
            x = g.node(op, inputs, [f"y{i}"], **(attrs[0] if attrs else {}))
    g.outputs.append(of.value_info(x))
    return g


@pytest.mark.parametrize("ops,message", [
    ([("Relu", None)], "without Conv nodes"),
    ([("Conv", None), ("Relu", None), ("Conv", None), ("Relu", None)], "2 Conv nodes; a VGG16 has 13"),
    ([("Mul", np.ones(3)), ("Conv", None), ("Relu", None)], "not a plain VGG: .*Mul node"),
    ([("Add", np.ones((1, 3, 1, 1))), ("Conv", None), ("Relu", None)], "not a plain VGG: .*Add node.*not a conv bias"),
    ([("Conv", None), ("Sigmoid", None)], "not a plain VGG: the last Conv is followed by Sigmoid"),
    ([("Conv", None), ("Transpose", None, dict(perm=[0, 1, 3, 2])), ("Conv", None), ("Relu", None)],
     "not a plain VGG: Transpose node 'y1' inside the conv layers"),
    ([("Conv", None), ("MaxPool", None, dict(kernel_shape=[3, 3], strides=[2, 2])), ("Conv", None), ("Relu", None)],
     r"not a plain VGG: MaxPool node 'y1' has kernel \[3, 3\], strides \[2, 2\]"),
    ([("Conv", None), ("InstanceNormalization", np.ones(3)), ("Conv", None), ("Relu", None)],
     "not a plain VGG: its conv layers pass through InstanceNormalization node"),
])
def test_not_a_vgg_graph(tmp_path, ops, message):
    p = str(tmp_path / "graph.onnx")
    small_graph(ops).write(p)
    assert detect(p) == "onnx"
    with pytest.raises(wmod.WeightsError, match="graph.onnx: .*" + message):
        convert_file(p)


def test_unpacked_floats_read_in_one_go():
    """An unpacked float_data (a key before every value) becomes one array, not one chunk a value."""
    from vggnumpy.weights.convert import onnxfile
    a = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    for storage, field in (("float-unpacked", 4), ("double-unpacked", 10)):
        t = of.tensor("t", a, storage)
        header = onnxfile._tensor(t, (0, len(t)))
        assert header.dims == [1000] and header.name == "t" and len(header.data[field]) == 1
        np.testing.assert_array_equal(onnxfile._values("t.onnx", t, header, "."), a)


def test_unknown_origin_asks_for_a_convention(tmp_path):
    p = write(tmp_path / "plain.onnx", tiny(), layout="plain")
    with pytest.raises(wmod.WeightsError, match="plain.onnx: an ONNX VGG of unknown origin.*--convention"):
        convert_file(p)


def test_external_data_outside_the_folder(tmp_path):
    (tmp_path / "model").mkdir()
    outside = tmp_path / "x.bin"
    outside.write_bytes(np.ones(1000, np.float32).tobytes())
    os.symlink(outside, tmp_path / "model" / "link.bin")
    for loc, why in (("../x.bin", "not a file inside"), (str(outside), "not a file inside"),
                     ("sub/../../x.bin", "not a file inside"), ("link.bin", "a link that leads outside")):
        p = str(tmp_path / "model" / "ext.onnx")
        g = of.vgg(tiny(), "vgg16", "torch", storage="external", location="weights.bin")
        g.side = {}                                         # only the model: its data names loc
        g.inits[0] = of.tensor("features.0.weight", np.ones((2, 2, 3, 3)), "external",
                               external=(loc, 0, 144))
        g.write(p)
        with pytest.raises(wmod.WeightsError, match=f"ext.onnx: tensor 'features.0.weight'.*{why}"):
            convert_file(p)


def test_external_data_missing_or_short(tmp_path):
    p = write(tmp_path / "ext.onnx", tiny(), layout="torch", storage="external")
    data = tmp_path / "weights.bin"
    with open(data, "r+b") as f:
        f.truncate(100)
    with pytest.raises(wmod.WeightsError, match="ext.onnx: tensor 'features.0.weight' lies at bytes 0..144.*100 bytes"):
        convert_file(p)
    data.unlink()
    with pytest.raises(wmod.WeightsError, match="ext.onnx: tensor 'features.0.weight'.*weights.bin.*missing"):
        convert_file(p)


@pytest.mark.parametrize("storage", ["raw", "float", "external"])
def test_tiny_file_declaring_a_huge_tensor(tmp_path, storage):
    p = write(tmp_path / "huge.onnx", tiny(), layout="torch", storage=storage,
              dims={"conv1_1": [1 << 20, 1 << 20, 3, 3]})                   # 40 TB of float32
    assert os.path.getsize(p) < 20000
    with pytest.raises(wmod.WeightsError, match=r"huge.onnx: tensor 'features.0.weight' declares shape "
                                                r"\(1048576, 1048576, 3, 3\).* holds 144 bytes"):
        convert_file(p)


# ------------------------------------------------------------------ command line


@pytest.mark.slow
def test_cli(files, tmp_path, capsys):
    out = str(tmp_path / "w.h5")
    assert main(["weights", "convert", files["tf2onnx"], "-o", out]) == 0
    w = wmod.load(out)
    assert w.arch == "vgg16" and w.convention() == wmod.CAFFE
    capsys.readouterr()
    bad = write(tmp_path / "bn.onnx", tiny(), layout="zoo", bn=True)
    assert main(["weights", "convert", bad, "-o", str(tmp_path / "bad.h5")]) == 1
    err = capsys.readouterr().err
    assert "bn.onnx: a batch-normalised VGG" in err and "Traceback" not in err
    assert not (tmp_path / "bad.h5").exists()
