"""The `vggnumpy explain` subcommand: the network as a table (explain.py), and optionally each image's features."""
import os

from ..files.log import stderr
from ..nn import arch as archmod
from ..learn import explain
from .options import comma_items


def add_parser(sub):
    p = sub.add_parser("explain", help="print the network as a table: per layer its output shape, parameters, "
                       "multiply-adds, memory, receptive field, stride and halo",
                       description="Print the network as a table, one row per layer (conv, relu, pool) named as in "
                       "the paper: output shape at the input size, parameters, multiply-adds, forward and backward "
                       "memory, receptive field, stride and halo, and the totals. With --features, also write "
                       "pictures of what the style layers see in each image.")
    p.add_argument("--arch", default=None, help="vgg19, vgg16 or nin (default vgg19, or the --weights file's)")
    p.add_argument("-s", "--size", default="512", help="the input's side in pixels, or HEIGHTxWIDTH (default 512)")
    p.add_argument("--weights", default=None, metavar="FILE", help="a vggnumpy weights file: also show its input "
                   "convention, source and whether it is trained; its network is the one explained")
    p.add_argument("--layers-up-to", default=None, metavar="NAME", help="stop the table at this layer (default: "
                   "the last)")
    p.add_argument("--pooling", default="max", help="max or avg: what the backward pass keeps differs (default max)")
    p.add_argument("--features", nargs="+", default=None, metavar="IMAGE", help="also write pictures of the style "
                   "layers' features for each IMAGE into -o DIR (resized so the longest side is --size)")
    p.add_argument("-o", "--output", dest="outdir", default=None, metavar="DIR", help="the folder --features "
                   "writes into (made when missing)")
    p.add_argument("--style-layers", default=None, metavar="NAMES", help="comma-separated layers --features shows "
                   "(default: the network's style layers)")
    p.set_defaults(func=cmd_explain)
    return p


def _load_weights(path):
    """The --weights file, or FileNotFoundError naming the option."""
    from ..weights import file as wmod
    if not os.path.exists(path):
        raise FileNotFoundError(f"--weights {path}: no such file; 'vggnumpy weights list' shows what is cached")
    wmod.check_regular(path, "--weights file")
    return wmod.load(path)


def _arch(given, weights):
    """The network to explain: the weights file's, else --arch, else vgg19. ValueError when they disagree."""
    if weights is not None:
        if given is not None and given != weights.arch:
            raise ValueError(f"--arch {given} does not match --weights {weights.path}, which holds {weights.arch}; "
                             f"leave out --arch")
        return weights.arch
    return explain.check_arch(given or "vgg19")


def _check_options(args):
    if args.features and not args.outdir:
        raise ValueError("--features needs -o DIR, the folder to write the feature pictures into")
    if args.outdir and not args.features:
        raise ValueError("-o DIR is where --features writes; give --features IMAGE [IMAGE ...] too, or leave out -o")
    if args.style_layers is not None and not args.features:
        raise ValueError("--style-layers chooses the layers --features shows; give --features too")
    from ..files.paths import OutputError, check_input
    if args.outdir and os.path.lexists(args.outdir) and not os.path.isdir(args.outdir):
        raise OutputError(f"-o {args.outdir}: is a file, not a folder; give a folder for --features (made when "
                          f"missing)")
    for path in args.features or ():
        check_input("--features image", path)           # before any weights are looked for


def cmd_explain(args):
    _check_options(args)
    height, width = explain.parse_size(args.size)
    weights = _load_weights(args.weights) if args.weights else None
    arch = _arch(args.arch, weights)
    if args.features and weights is None:
        from ..run.pipeline import resolve_weights
        weights = resolve_weights(None, arch, stderr)
        arch = weights.arch                 # without pretrained VGG-19, a pretrained VGG16 may come instead
    rows = explain.layer_rows(arch, height, width, args.layers_up_to, args.pooling)
    lines = explain.weights_lines(weights) if weights is not None else []
    print("\n".join(lines + explain.table_lines(arch, height, width, rows, args.pooling)))
    if args.features:
        for path in _features(args, weights, max(height, width)):
            print(f"wrote {path}")
    return 0


def _style_layers(text, arch):
    """--style-layers as a list of the arch's layer names (default: its style layers); ValueError naming it."""
    if text is None:
        return list(archmod.DEFAULT_LAYERS[arch]["style"])
    layers = comma_items(text)
    names = archmod.layer_names(arch)
    unknown = [layer for layer in layers if layer not in names]
    if unknown or not layers:
        raise ValueError(f"--style-layers {text!r}: {'unknown ' + ', '.join(unknown) if unknown else 'no layer'} "
                         f"for {arch}; layers are {', '.join(names)}")
    return layers


def _labels(paths):
    """File stems, made unique with -2, -3, ... where two images share one."""
    seen, out = {}, []
    for p in paths:
        stem = os.path.splitext(os.path.basename(p))[0]
        seen[stem] = seen.get(stem, 0) + 1
        out.append(stem if seen[stem] == 1 else f"{stem}-{seen[stem]}")
    return out


def _features(args, weights, size):
    """Write the --features pictures with lookinside.write_features; the paths written."""
    from ..files import images
    from ..learn import lookinside
    from ..files.paths import make_folder
    from ..nn.network import Network
    arch = weights.arch
    layers = _style_layers(args.style_layers, arch)
    min_side = archmod.min_input_size(arch, layers)
    named = [(label, images.load_image(path, size, min_side, "--features image"))
             for label, path in zip(_labels(args.features), args.features)]      # (H, W, 3) float32 RGB in [0, 1]
    make_folder(args.outdir, "-o folder for --features")
    return lookinside.write_features(Network(weights, pooling=args.pooling), named, layers, args.outdir, stderr)
