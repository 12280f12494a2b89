"""The `vggnumpy train` and `vggnumpy fast` subcommands: a style network trained for one painting, and photos painted
by one in a single forward pass."""
from .. import config
from ..files.log import stderr
from .options import add_style_options, options_of
from .signals import EXIT_CODES, Stopper


def add_parsers(sub):
    t = sub.add_parser("train", help="train a style network for STYLE on folders of photos (Johnson et al. 2016); "
                       "rerun the same command to resume",
                       description="Train the feed-forward style network (Johnson et al. 2016, instance norm) for "
                       "one painting on random crops of your photos, with Adam on the perceptual loss through VGG. "
                       "The model file is written every --checkpoint-every steps with the optimiser's state, and on "
                       "Ctrl-C: rerunning the same command resumes it, and a larger -n trains it further.")
    t.add_argument("style", help="the painting")
    t.add_argument("--photos", nargs="+", required=True, metavar="DIR", help="folders of photos to train on")
    t.add_argument("-o", "--output", required=True, metavar="MODEL.h5", help="the model file (and checkpoint)")
    add_style_options(t, config.TrainOptions)
    t.set_defaults(func=cmd_train)
    f = sub.add_parser("fast", help="paint photos with a style network in one forward pass (a shipped one by name, "
                       "see --list, or a file made by vggnumpy train)",
                       description="Paint each IMAGE with a style network in one forward pass. MODEL is a shipped "
                       "model's name (--list) or a file made by vggnumpy train. Images larger than half the free "
                       "memory are painted tile by tile, with exactly the same result.")
    f.add_argument("model", nargs="?", help="a shipped model's name or a model file")
    f.add_argument("images", nargs="*", metavar="IMAGE", help="photos to paint")
    f.add_argument("-o", "--output", default="out.png", help="output .png or .jpg for one image; a folder for "
                   "several (each written as FOLDER/NAME.png) (default out.png)")
    f.add_argument("-s", "--size", type=int, default=None, help="longest side of the output in pixels (default: "
                   "each photo's own size)")
    f.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto", help="where to compute (default "
                   "auto: the GPU when CuPy finds one)")
    f.add_argument("--original-colors", action="store_true", help="keep the photo's colours: the painting's "
                   "luminance with the photo's chroma (YIQ)")
    f.add_argument("--color-transfer", default=None, choices=("luminance", "histogram", "histogram:chol",
                   "histogram:pca", "histogram:sym"), help="keep the photo's colours: luminance as "
                   "--original-colors; histogram[:m] = recolour the painted image to the photo's colour mean and "
                   "covariance")
    f.add_argument("--tile", type=int, default=None, metavar="PX", help="paint in tiles of PX pixels, exactly "
                   "(default: only when the image would take over half the free memory; 0: never)")
    f.add_argument("--list", action="store_true", help="name the shipped models with their training settings")
    f.set_defaults(func=cmd_fast)


def cmd_train(args):
    from ..feedforward.train import train
    with Stopper("writing the checkpoint; rerun the same command to resume") as stop:
        res = train(args.style, args.photos, args.output, stop=stop, **options_of(args, config.TrainOptions))
    return EXIT_CODES[res.interrupted]


def describe(name, path):
    """One model as --list shows it."""
    from ..feedforward import model as modelfile
    m = modelfile.load(path)
    i = m.info
    net = i.get("loss_network", {})
    return (f"{name}: {i.get('style')} (sha256 {i.get('style_sha256', '')[:12]}), width {m.width:g}, "
            f"{i.get('iterations_done')} steps of {i.get('batch_size')} crops of {i.get('size')} px, "
            f"{i.get('seconds', 0) / 60:.0f} min; loss network {net.get('arch')} "
            f"({'pretrained' if net.get('trained') else 'UNTRAINED'}), content {','.join(i.get('content_layers', []))}"
            f" x {i.get('content_weight'):g}, style {','.join(i.get('style_layers', []))} x {i.get('style_weight'):g}"
            f", tv {i.get('tv_weight'):g}; photos {', '.join(sorted(i.get('photos', {})))}")


def cmd_fast(args):
    from ..feedforward import model as modelfile
    if args.list:
        if args.model or args.images:
            raise ValueError("--list names the shipped models; give it alone")
        models = modelfile.shipped()
        for name, path in models.items():
            print(describe(name, path))
        if not models:
            print("no style networks are shipped in this version; make one with vggnumpy train")
        return 0
    if not args.model or not args.images:
        raise ValueError("give a MODEL (a shipped model's name, see --list, or a file made by vggnumpy train) and "
                         "at least one IMAGE")
    if args.size is not None and not 8 <= args.size <= config.MAX_SIZE:
        raise ValueError(f"--size {args.size}: must be from 8 to {config.MAX_SIZE}")
    if args.tile is not None and args.tile != 0 and args.tile < 64:
        raise ValueError(f"--tile {args.tile}: give at least 64 pixels, or 0 for never")
    from ..feedforward.fast import fast
    fast(args.model, args.images, args.output, size=args.size, device=args.device,
         original_colors=args.original_colors, color_transfer=args.color_transfer, tile=args.tile, log=stderr)
    stderr(f"vggnumpy fast: wrote {args.output}")
    return 0

