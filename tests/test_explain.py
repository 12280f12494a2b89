"""`vggnumpy explain`: every row checked against PyTorch's own count, receptive fields against gradients, the CLI."""
import inspect
import sys
import types

import numpy as np
import pytest

import vggnumpy
from vggnumpy.nn import arch as archmod
from vggnumpy.cli import main as cli
from vggnumpy.learn import explain
from vggnumpy.style import tiling
from vggnumpy.weights import file as wmod

torch = pytest.importorskip("torch")
nn = torch.nn

# The networks written out by hand from the papers and Caffe's prototxt, not from arch.py: VGG's configurations
# "D" and "E" (Simonyan and Zisserman 2014, table 1; "M" a 2x2/2 max pool) and BVLC's nin_imagenet_conv.
VGG_CFG = {"vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
           "vgg19": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
                     512, 512, 512, 512, "M"]}
NIN_SPEC = [("conv1", 96, 11, 4, 0), "relu0", ("cccp1", 96, 1, 1, 0), "relu1", ("cccp2", 96, 1, 1, 0), "relu2",
            "pool0", ("conv2", 256, 5, 1, 2), "relu3", ("cccp3", 256, 1, 1, 0), "relu5", ("cccp4", 256, 1, 1, 0),
            "relu6", "pool2", ("conv3", 384, 3, 1, 1), "relu7", ("cccp5", 384, 1, 1, 0), "relu8",
            ("cccp6", 384, 1, 1, 0), "relu9", "pool3", ("conv4-1024", 1024, 3, 1, 1), "relu10",
            ("cccp7-1024", 1024, 1, 1, 0), "relu11", ("cccp8-1024", 1000, 1, 1, 0), "relu12"]


def _vgg_spec(cfg):
    """[(name, kind, out_channels, k, stride, pad, ceil)] of a VGG configuration."""
    spec, block, i = [], 1, 1
    for v in cfg:
        if v == "M":
            spec.append((f"pool{block}", "pool", None, 2, 2, 0, False))
            block, i = block + 1, 1
        else:
            spec += [(f"conv{block}_{i}", "conv", v, 3, 1, 1, False), (f"relu{block}_{i}", "relu", None, 0, 0, 0, 0)]
            i += 1
    return spec


def _nin_spec():
    out = []
    for v in NIN_SPEC:
        if isinstance(v, tuple):
            out.append((v[0], "conv", *v[1:], False))
        elif v.startswith("relu"):
            out.append((v, "relu", None, 0, 0, 0, 0))
        else:
            out.append((v, "pool", None, 3, 2, 0, True))           # Caffe pools in ceil mode
    return out


def spec(name):
    return _nin_spec() if name == "nin" else _vgg_spec(VGG_CFG[name])


def torch_layers(name, channels=None, pool="max", device="cpu", dtype=torch.float32):
    """[(name, kind, module)]; channels: force every conv's width (1 for the receptive-field test)."""
    layers, cin = [], 3 if channels is None else channels
    for lname, kind, cout, k, stride, pad, ceil in spec(name):
        if kind == "conv":
            cout = cout if channels is None else channels
            m = nn.Conv2d(cin, cout, k, stride, pad, device=device, dtype=dtype)
            cin = cout
        elif kind == "relu":
            m = nn.ReLU()
        else:
            m = (nn.MaxPool2d if pool == "max" else nn.AvgPool2d)(k, stride, ceil_mode=ceil)
        layers.append((lname, kind, m))
    return layers


def run_torch(layers, x):
    """{name: output} of every layer for input x."""
    outs = {}
    for lname, _, m in layers:
        x = m(x)
        outs[lname] = x
    return outs


CASES = [("vgg19", 512, 512), ("vgg19", 224, 224), ("vgg19", 67, 45), ("vgg16", 224, 224), ("vgg16", 97, 130),
         ("nin", 224, 224), ("nin", 512, 512), ("nin", 101, 67)]


@pytest.mark.parametrize("name,h,w", CASES)
@pytest.mark.slow
def test_every_row_matches_torch(name, h, w):
    """Shape, parameters, multiply-adds and forward bytes of every row, as PyTorch counts them (shapes from
    running a zeros input: on the meta device, which computes shapes only, for the large sizes)."""
    device = "meta" if h * w > 150 * 150 else "cpu"
    layers = torch_layers(name, device=device)
    with torch.no_grad():
        outs = run_torch(layers, torch.zeros(1, 3, h, w, device=device))
    rows = explain.layer_rows(name, h, w)
    assert [r.name for r in rows] == [n for n, _, _ in layers]
    for r, (lname, kind, m) in zip(rows, layers):
        out = outs[lname]
        assert r.kind == kind, lname
        assert r.shape == tuple(out.shape[1:]), lname
        assert r.params == sum(p.numel() for p in m.parameters()), lname
        macs = m.weight.numel() * out.shape[-2] * out.shape[-1] if kind == "conv" else 0
        assert r.macs == macs, lname
        assert r.forward_bytes == out.numel() * 4, lname
    t = explain.totals(rows)
    assert t["params"] == sum(p.numel() for _, _, m in layers for p in m.parameters())
    assert t["macs"] == sum(r.macs for r in rows)


def test_vgg19_conv_parameters_are_the_published_count():
    assert explain.totals(explain.layer_rows("vgg19", 224, 224))["params"] == 20_024_384
    assert explain.totals(explain.layer_rows("vgg16", 224, 224))["params"] == 14_714_688


def _extent(g):
    """(first, last) index holding a nonzero of the 1-D array g."""
    nz = np.flatnonzero(g)
    return int(nz[0]), int(nz[-1])


RF_LAYERS = {"vgg19": (["conv1_1", "pool1", "relu3_1", "conv4_2", "pool5"], 600),
             "vgg16": (["relu2_2", "pool3", "conv5_3"], 420),
             "nin": (["conv1", "pool0", "conv2", "pool3", "relu12"], 460)}


@pytest.mark.parametrize("name", sorted(RF_LAYERS))
@pytest.mark.slow
def test_receptive_field_stride_and_halo_match_gradients(name):
    """A one-channel copy of the network with positive weights and average pooling: the input gradient of one
    unit is nonzero exactly on the pixels it reads, so its extent is R, its start J u + s, and the next unit's
    start is J further."""
    wanted, size = RF_LAYERS[name]
    layers = torch_layers(name, channels=1, pool="avg", dtype=torch.float64)
    with torch.no_grad():
        for _, kind, m in layers:
            if kind == "conv":
                m.weight.fill_(1.0)
                m.bias.zero_()
    x = torch.ones(1, 1, size, size, dtype=torch.float64, requires_grad=True)
    outs = run_torch(layers, x)
    rows = {r.name: r for r in explain.layer_rows(name, size, size)}
    for lname in wanted:
        out = outs[lname]
        u = out.shape[-1] // 2
        starts = []
        for v in (u, u + 1):
            (g,) = torch.autograd.grad(out[0, 0, u, v], x, retain_graph=True)
            g = g[0, 0].numpy()
            (y0, y1), (x0, x1) = _extent(g.any(axis=1)), _extent(g.any(axis=0))
            assert 0 < y0 and y1 < size - 1 and 0 < x0 and x1 < size - 1, f"{lname}: field touches the border"
            assert y1 - y0 + 1 == x1 - x0 + 1 == rows[lname].receptive, lname
            assert (g[y0:y1 + 1, x0:x1 + 1] > 0).all(), lname
            starts.append(x0)
        j, s, r = starts[1] - starts[0], starts[0] - (starts[1] - starts[0]) * u, rows[lname].receptive
        assert (rows[lname].stride, rows[lname].offset) == (j, s), lname
        assert rows[lname].halo == max(-s, s + r - j), lname
        need = max(-s, s + r - j)
        assert tiling.halo(name, [lname])[0] == -(-need // j) * j, lname


@pytest.mark.parametrize("name,h,w,pooling", [("vgg16", 40, 36, "max"), ("nin", 67, 71, "max"),
                                               ("nin", 67, 71, "avg")])
@pytest.mark.slow
def test_backward_column_is_what_the_network_keeps(name, h, w, pooling):
    """The backward column's total equals the bytes of the masks and tap indices the NumPy network's forward
    actually caches (the kernels' caches, fused conv + ReLU or not), weights excluded."""
    from vggnumpy.nn.network import Network
    net = Network(wmod.random_weights(name, 0), pooling=pooling, threads=1)
    rows = explain.layer_rows(name, h, w, pooling=pooling)
    x = np.ones((1, 3, h, w), np.float32)
    for asked in ([rows[-1].name], [r.name for r in rows if r.kind == "conv"] + [rows[-1].name]):  # fused, then not
        _, (caches, _) = net.forward(x, asked)

        def kept(c):
            if isinstance(c, np.ndarray):
                return c.nbytes if c.dtype in (np.bool_, np.uint8) else 0
            return sum(kept(v) for v in c) if isinstance(c, tuple) else 0
        assert sum(kept(c) for c in caches) == explain.totals(rows)["backward_bytes"], asked[:1]


def test_size_parsing_and_bad_input_name_the_option():
    assert explain.parse_size("512") == (512, 512)
    assert explain.parse_size("384x512") == (384, 512)
    for bad in ("0", "-3", "12x", "abc", "1x2x3"):
        with pytest.raises(ValueError, match="--size"):
            explain.parse_size(bad)
    with pytest.raises(ValueError, match="--arch 'alexnet'"):
        explain.layer_rows("alexnet", 224, 224)
    with pytest.raises(ValueError, match="--size 31x31 is too small for vgg19 up to pool5.*32x32"):
        explain.layer_rows("vgg19", 31, 31)
    assert explain.layer_rows("vgg19", 31, 31, up_to="relu4_4")[-1].shape == (512, 3, 3)
    with pytest.raises(ValueError, match="--layers-up-to 'conv9'"):
        explain.layer_rows("vgg19", 224, 224, up_to="conv9")


def test_formatting():
    assert explain.count(20024384) == "20,024,384"
    assert explain.size_text(1536) == "1.5 KiB"
    assert explain.size_text(3 << 20) == "3.0 MiB"
    assert explain.size_text(622 << 20) == "622 MiB"
    assert explain.size_text(5 << 30) == "5.0 GiB"


# --- the command line ------------------------------------------------------------------------------------------

@pytest.fixture
def main():
    return cli.main


def test_cli_prints_the_table(main, capsys):
    assert main(["explain", "--arch", "vgg16", "--size", "224"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("conv5_3 "))
    assert "512x14x14" in line and "2,359,808" in line and "462,422,016" in line     # 512*512*9*14*14
    total = next(row for row in out.splitlines() if row.startswith("total"))
    assert "14,714,688" in total and "15,346,630,656" in total
    assert "pool5" in out and "512x7x7" in out


@pytest.mark.parametrize("argv,option", [(["--arch", "resnet"], "--arch"), (["--size", "16"], "--size"),
                                         (["--size", "big"], "--size"), (["--weights", "/no/such.h5"], "--weights"),
                                         (["--layers-up-to", "fc7"], "--layers-up-to"),
                                         (["--features", "a.png"], "--features"), (["-o", "x"], "-o")])
def test_cli_bad_input_is_one_clear_line(main, capsys, argv, option):
    assert main(["explain"] + argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"vggnumpy: error: {option}"), err
    assert "Traceback" not in err


@pytest.fixture(scope="module")
def nin_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("w") / "random-nin.h5"
    wmod.save(wmod.random_weights("nin", 3), str(path))
    return str(path)


def test_cli_weights_shows_the_convention_and_takes_the_arch(main, capsys, nin_file):
    assert main(["explain", "--weights", nin_file, "--size", "224"]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and "random:seed=3" in out and "channels RGB" in out
    assert "mean (0.485, 0.456, 0.406)" in out and "std (0.229, 0.224, 0.225)" in out and "x 1" in out
    assert "cccp8-1024" in out and "conv1_1" not in out
    assert main(["explain", "--weights", nin_file, "--arch", "vgg19"]) == 1
    assert "--arch vgg19 does not match" in capsys.readouterr().err


def test_cli_features_calls_lookinside(main, capsys, monkeypatch, nin_file, tmp_path):
    from PIL import Image
    calls = []

    def write_features(net, named_images, layers, outdir, log):
        calls.append((net, named_images, layers, outdir))
        return [f"{outdir}/{label}.png" for label, _ in named_images]
    stub = types.SimpleNamespace(write_features=write_features)
    monkeypatch.setitem(sys.modules, "vggnumpy.learn.lookinside", stub)
    monkeypatch.setattr(vggnumpy.learn, "lookinside", stub, raising=False)
    img = tmp_path / "cat.png"
    Image.fromarray(np.full((100, 160, 3), 200, np.uint8)).save(img)
    out = tmp_path / "out"
    assert main(["explain", "--weights", nin_file, "--size", "128", "--features", str(img), str(img),
                 "-o", str(out)]) == 0
    (net, named, layers, outdir), = calls
    assert net.arch == "nin" and layers == archmod.DEFAULT_LAYERS["nin"]["style"] and outdir == str(out)
    assert out.is_dir()
    assert [label for label, _ in named] == ["cat", "cat-2"]
    a = named[0][1]
    assert a.shape == (80, 128, 3) and a.dtype == np.float32 and 0 <= a.min() and a.max() <= 1
    assert f"wrote {out}/cat.png" in capsys.readouterr().out
    assert main(["explain", "--weights", nin_file, "--features", str(img), "-o", str(out),
                 "--style-layers", "relu0,nope"]) == 1
    assert "--style-layers" in capsys.readouterr().err


def test_real_lookinside_takes_the_agreed_arguments():
    try:
        from vggnumpy.learn import lookinside
    except ImportError:
        pytest.skip("vggnumpy/lookinside.py is not written yet")
    params = list(inspect.signature(lookinside.write_features).parameters)
    assert params[:5] == ["net", "named_images", "layers", "outdir", "log"]


@pytest.mark.parametrize("arch, total", [("vgg16", "138,357,544"), ("vgg19", "143,667,240")])
def test_the_whole_network_with_its_classifier_is_the_papers_count(main, capsys, arch, total):
    """The VGG paper's Table 2: 138 M (D) and 144 M (E) parameters with the fully connected layers; here the
    published exact counts of those networks (torchvision's vgg16 and vgg19 have 138,357,544 and 143,667,240)."""
    assert main(["explain", "--arch", arch, "--size", "224"]) == 0
    assert f"{total} in all" in " ".join(capsys.readouterr().out.split())
