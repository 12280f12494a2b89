"""`vggnumpy train`: the transformer network trained for one painting with Adam on the perceptual loss, writing a
checkpoint (the model file with Adam's state) every N steps; rerunning the same command resumes from it."""
import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass

import numpy as np

from .. import config
from ..files import images
from ..files.log import stderr
from ..files.paths import check_input, check_outputs, InputError
from ..nn import arch as archmod, backend as backends, transformer
from ..nn.network import Network
from ..optim.weight_adam import Adam
from . import data, model as modelfile
from .loss import Perceptual

# What a resumed run must share with the checkpoint it continues (the rest: iterations, files for the trace).
SETTINGS = ("style_sha256", "size", "photo_size", "style_size", "batch_size", "width", "learning_rate", "seed",
            "content_weight", "style_weight", "tv_weight", "content_layers", "style_layers", "pooling",
            "loss_network", "photos")


@dataclass
class TrainResult:
    path: str                   # the model file
    iterations: int             # steps done in all, over every run of the command
    seconds: float              # training time in all, checkpoints included
    loss: float                 # the last step's loss (nan when no step ran)
    interrupted: str = ""       # why this run stopped early ("SIGINT", "SIGTERM"), else ""
    history: list = dataclasses.field(default_factory=list)


def check(style, photos, output, o):
    """Refuse, before any work, a bad output name, an input that is not a file, or an output that is an input."""
    if not str(output).endswith(".h5"):
        raise config.OptionError(f"-o {output}: a style network is an HDF5 file; end the name in .h5")
    if not photos:
        raise config.OptionError("--photos: give at least one folder of photos to train on")
    try:
        check_input("style image", style)
        if o.weights:
            check_input("weights file", o.weights)
    except InputError as e:
        raise images.ImageError(str(e)) from None
    inputs = [("style image", style)] + ([("weights file", o.weights)] if o.weights else [])
    outputs = [("model file", output)] + [(n, p) for n, p in (("trace", o.trace), ("plot", o.plot)) if p]
    check_outputs(outputs, inputs, None)
    if o.plot:
        from ..learn.plot import require
        try:
            require()
        except ImportError as e:
            raise config.OptionError(str(e)) from None


CONTENT_LAYERS = ("relu2_2", "relu4_2")    # the default content layers where the loss network has them (VGG)


def layer_shares(net, o):
    """({content layer: share}, {style layer: share}): the options' layers, else CONTENT_LAYERS (a shallow layer
    for the edges, a deep one for the objects) and the loss network's default style layers."""
    defaults = archmod.DEFAULT_LAYERS.get(net.arch, archmod.DEFAULT_LAYERS["vgg19"])
    names = archmod.layer_names(net.arch)
    content = list(o.content_layers or (CONTENT_LAYERS if set(CONTENT_LAYERS) <= set(names) else defaults["content"]))
    style = list(o.style_layers or defaults["style"])
    net._deepest(content + style)                       # a clear error for an unknown layer name
    return {n: 1.0 / len(content) for n in content}, {n: 1.0 / len(style) for n in style}


def describe(o, w, style, style_sha, content, style_layers, photo_digest):
    """The model's info: the settings it is trained with (SETTINGS) and what the README and --list show."""
    return dict(style=os.path.basename(style), style_sha256=style_sha, size=o.size, photo_size=o.photo_size,
                style_size=o.style_size, batch_size=o.batch_size, width=o.width, learning_rate=o.learning_rate,
                seed=o.seed, content_weight=o.content_weight, style_weight=o.style_weight, tv_weight=o.tv_weight,
                content_layers=list(content), style_layers=list(style_layers), pooling=o.pooling,
                loss_network=dict(arch=w.arch, trained=bool(w.trained), source=w.source,
                                  description=w.description),
                photos=photo_digest, iterations=o.iterations, iterations_done=0, seconds=0.0)


def start(output, info, o, log):
    """The model to train: the checkpoint at `output` when it was made with the same settings, else a new one."""
    if not os.path.exists(output):
        return modelfile.Model(transformer.init_params(o.width, o.seed), info)
    m = modelfile.load(output)
    differ = [k for k in SETTINGS if m.info.get(k) != info[k]]
    if differ:
        raise config.OptionError(f"-o {output}: that model was trained with other settings ({', '.join(differ)}); "
                                 f"rerun with the same settings to resume it, or give another -o")
    m.info["iterations"] = o.iterations
    log(f"vggnumpy train: resuming {output} at step {m.info['iterations_done']} of {o.iterations}")
    return m


def _sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def prepare(style, photos, output, o, log):
    """Everything before the first step: inputs read and checked, the loss network, the loss, the model to train."""
    from ..run.pipeline import resolve_weights
    check(style, photos, output, o)
    files = data.photo_files(photos)
    style_arr = images.load_image(style, o.style_size, what="style image")
    pics = data.load_photos(files, o.size, o.photo_size)
    backend = backends.select(o.device, log=log)
    w = resolve_weights(o.weights, "vgg19", log)
    net = Network(w, o.pooling, kernels=backend.kernels)
    content, style_layers = layer_shares(net, o)
    info = describe(o, w, style, _sha(style), content, style_layers, data.digest(files))
    m = start(output, info, o, log)
    loss = Perceptual(net, backend.asarray(style_arr.transpose(2, 0, 1)), content, style_layers,
                      o.content_weight, o.style_weight, o.tv_weight)
    log(f"vggnumpy train: {os.path.basename(style)} through {w.arch} ({'pretrained' if w.trained else 'UNTRAINED'}"
        f"), {len(pics)} photos, crops {o.size} px x {o.batch_size}, width {o.width:g}, device {backend.name}")
    return backend, loss, pics, m


def train(style, photos, output, *, log=None, stop=None, on_step=None, **options):
    """Train (or resume) the style network for painting `style` on the photos in the folders `photos`, into the
    model file `output`. Every option of config.TrainOptions is a keyword. stop() -> a reason ends the run after
    the current step, with a checkpoint; on_step(step, loss, parts) is called after every step. TrainResult."""
    log = log or stderr
    o = config.make_train(**options)
    backend, loss, pics, m = prepare(style, photos, output, o, log)
    params = {k: backend.asarray(v) for k, v in m.params.items()}
    net = transformer.Transformer(params, kernels=backend.kernels)
    adam = Adam.from_state({k: v if k == "t" else backend.asarray(v) for k, v in m.adam.items()}, o.learning_rate) \
        if m.adam else Adam(o.learning_rate)
    done, seconds0 = int(m.info["iterations_done"]), float(m.info["seconds"])
    bar = _bar(o, done, log)
    t0, interrupted, last = time.perf_counter(), "", float("nan")
    try:
        for step in range(done, o.iterations):
            x = backend.asarray(data.batch(pics, step, o.size, o.batch_size, o.photo_size, o.seed))
            y, cache = net.forward(x)
            last, dy, parts = loss.evaluate(y, x)
            grads, _ = net.backward(dy, cache)
            adam.step(params, grads)
            m.info["iterations_done"] = step + 1
            m.info["seconds"] = seconds0 + time.perf_counter() - t0
            m.history.append([step + 1, last, parts["content"], parts["style"], parts["tv"], m.info["seconds"]])
            if not np.isfinite(last):
                raise RuntimeError(f"the loss became {last} at step {step + 1}; lower --learning-rate")
            bar.update(last, m.info["seconds"])
            if on_step is not None:
                on_step(step + 1, last, parts)
            interrupted = stop() if stop is not None else ""
            if (step + 1) % o.checkpoint_every == 0 or interrupted or step + 1 == o.iterations:
                _save(m, params, adam, output, o)
            if interrupted:
                break
    finally:
        bar.close()
    _reports(m, o)
    log(f"vggnumpy train: {m.info['iterations_done']} of {o.iterations} steps, {m.info['seconds']:.0f} s in all, "
        f"wrote {output}" + (f"; interrupted ({interrupted}): rerun the same command to resume" if interrupted else ""))
    return TrainResult(output, m.info["iterations_done"], m.info["seconds"], last, interrupted, m.history)


def _save(m, params, adam, output, o):
    """The model file with Adam's state, so that a rerun, or one with more -n, goes on exactly where it stopped."""
    m.params = {k: backends.to_numpy(v) for k, v in params.items()}
    m.adam = {k: v if k == "t" else backends.to_numpy(v) for k, v in adam.state().items()}
    modelfile.save(m, output)          # its writing time counts in the next step's seconds


def _reports(m, o):
    """--trace and --plot from the model's whole history (every run of the command)."""
    rows = [dict(iteration=int(r[0]), loss=r[1], terms=dict(content=r[2], style=r[3], tv=r[4]), seconds=r[5],
                 scale=0) for r in m.history]
    if o.trace:
        import json
        from ..files.paths import atomic_write
        with atomic_write(o.trace, suffix=".json") as tmp:
            with open(tmp, "w") as f:
                json.dump(dict(software="vggnumpy", command="train", info=m.info, iterations=rows), f, indent=1)
    if o.plot and rows:
        from ..learn.plot import loss_curves
        loss_curves(rows, o.plot)


class _bar:
    """A tqdm bar over the steps with the loss and the training time (none with --no-progress)."""

    def __init__(self, o, done, log):
        self.tq = None
        if o.progress:
            import sys
            from tqdm import tqdm
            self.tq = tqdm(total=o.iterations, initial=done, unit="step", desc="train", dynamic_ncols=True,
                           file=sys.stderr)

    def update(self, loss, seconds):
        if self.tq is not None:
            self.tq.update(1)
            self.tq.set_postfix(loss=f"{loss:.4g}", trained=f"{seconds / 60:.1f} min")

    def close(self):
        if self.tq is not None:
            self.tq.close()
