"""The `vggnumpy` command line: style, demo and weights subcommands; the style options are made from config.Options."""
import argparse
import os
import signal
import sys
import warnings

from .. import __version__, config
from ..files.log import stderr
from .options import add_style_options, options_of
from .signals import EXIT_CODES, Stopper, Terminated, _terminate




def _stylize(args, content, styles, output):
    from ..run.pipeline import stylize
    with Stopper() as stop:
        res = stylize(content, styles, output, stop=stop, **options_of(args))
    return EXIT_CODES[res.interrupted]


def cmd_style(args):
    return _stylize(args, args.content, args.styles, args.output)


def cmd_demo(args):
    from ..learn import demo
    from ..files import images
    from ..run.pipeline import check_job
    stem, ext = os.path.splitext(args.output)
    names = (f"{stem}_content{ext}", f"{stem}_style{ext}")
    check_job(config.Job(None, (None,), args.output, config.make(**options_of(args))))    # drawn below
    for name in names:
        images.check_output_path(name)
    content, style = demo.landscape(), demo.swirls()
    images.save_image(names[0], content)
    images.save_image(names[1], style)
    stderr(f"vggnumpy demo: drew {names[0]} (a landscape) and {names[1]} (brush strokes)")
    return _stylize(args, content, [style], args.output)


def cmd_video(args):
    from ..video.clip import stylize_video
    with Stopper("keeping the frames already finished; rerun the same command to go on") as stop:
        res = stylize_video(args.input, args.styles, args.output, stop=stop,
                            **options_of(args, config.VideoOptions), **options_of(args))
    return EXIT_CODES[res.interrupted]


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
    v = sub.add_parser("video", help="paint every frame of a video (or a folder of numbered images) in the style of "
                       "STYLE, each frame held to the last by optical flow; rerun the same command to resume")
    v.add_argument("input", help="the video (any format PyAV reads) or a folder of numbered images")
    v.add_argument("styles", nargs="*", metavar="style", help="one or more paintings (none with --model)")
    v.add_argument("-o", "--output", default="out.mp4", help="output video (.mp4, .mov, .mkv, .avi) or a "
                   "folder for numbered PNG frames (default out.mp4)")
    add_style_options(v, config.VideoOptions)
    add_style_options(v)
    v.set_defaults(func=cmd_video)
    from . import batch as batch_cli, explain as explain_cli, fast as fast_cli, weights as weights_cli
    fast_cli.add_parsers(sub)
    batch_cli.add_parser(sub)
    weights_cli.add_parser(sub)
    explain_cli.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from ..files.images import ImageError
    from ..weights.hdf5 import WeightsError
    warnings.filterwarnings("ignore", category=UserWarning, module="vggnumpy")
    old = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ImageError, WeightsError, ValueError, RuntimeError, OSError) as e:
        stderr(f"vggnumpy: error: {e}")
        return 1
    except MemoryError:
        stderr("vggnumpy: error: out of memory; lower --size (or --style-scale), or use a machine with more memory")
        return 1
    except KeyboardInterrupt:
        stderr("vggnumpy: aborted (Ctrl-C); the output was not written")
        return 130
    except Terminated:
        stderr("vggnumpy: aborted (SIGTERM); the output was not written")
        return 143
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())


