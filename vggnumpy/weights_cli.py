"""The `vggnumpy weights` subcommands: random (an untrained network from a seed) and info."""
import os

import numpy as np

from . import weights as wmod


def add_parser(sub):
    p = sub.add_parser("weights", help="make, inspect, download and convert network weights")
    wsub = p.add_subparsers(dest="weights_command", metavar="COMMAND")
    wsub.required = True
    r = wsub.add_parser("random", help="write an UNTRAINED network with He-initialised weights from a seed")
    r.add_argument("-o", "--output", default=None, help="output .h5 (default: CACHE/random-ARCH-seedN.h5)")
    r.add_argument("--arch", default="vgg19", help="vgg19 or vgg16 (default vgg19)")
    r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    r.set_defaults(func=cmd_random)
    i = wsub.add_parser("info", help="show the layers, shapes, input convention and source of a weights file")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)
    return p


def cmd_random(args):
    from .transfer import cache_dir
    out = args.output or os.path.join(cache_dir(), f"random-{args.arch}-seed{args.seed}.h5")
    w = wmod.random_weights(args.arch, args.seed)
    wmod.save(w, out)
    print(f"wrote {out}: {w.description}")
    return 0


def cmd_info(args):
    w = wmod.load(args.file)
    print(format_info(w))
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
        lines.append(f"  {name:<9} kernel {'x'.join(map(str, k.shape)):<14} bias {b.shape[0]:<5} "
                     f"|w| mean {float(np.abs(k).mean()):.3g}")
    lines.append(f"parameters:  {total:,}")
    return "\n".join(lines)
