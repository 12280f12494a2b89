"""The `vggnumpy` command line: style, demo and weights subcommands; the style options are made from config.Options."""
import argparse
import os
import signal
import sys
import warnings

from . import __version__, config


def _list(parse, what):
    def convert(text):
        try:
            return [parse(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, got {text!r}") from None
    return convert


def _one(parse, what):
    def convert(text):
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    return convert


PARSERS = {"int": _one(int, "a whole number"), "float": _one(float, "a number"), "path": str, "bytes": str,
           "ints": _list(int, "whole numbers"), "floats": _list(float, "numbers"), "names": _list(str, "names")}


def default_text(f):
    """The default an option's help names: one value, or one per network when it depends on the network."""
    show = lambda v: f"{v:g}" if isinstance(v, float) else str(v)
    if f.metadata["shown"]:
        return f.metadata["shown"]
    if f.metadata["network"]:
        a, b = (show(config.NETWORK_DEFAULTS[k][f.name]) for k in ("pretrained", "untrained"))
        return a if a == b else f"{a} with pretrained weights, {b} untrained"
    if f.default is None or isinstance(f.default, bool):
        return ""
    return show(f.default)


def add_style_options(p, cls=None):
    """One argument per field of config.Options (or cls), in its group; unset options stay unset (the default
    applies)."""
    groups = {}
    for f in config.fields(cls):
        m = f.metadata
        g = groups.get(m["group"]) or groups.setdefault(m["group"], p.add_argument_group(m["group"]))
        d = default_text(f)
        text = m["help"] + (f" (default {d})" if d else "")
        kw = dict(dest=f.name, default=argparse.SUPPRESS, help=text.replace("%", "%%"))     # argparse formats help
        if m["kind"] == "flag":
            kw["action"] = "store_true"
        elif m["kind"] == "noflag":
            kw["action"] = "store_false"
        elif m["kind"] == "paths":                      # given once per style image
            kw.update(action="append", metavar=m["metavar"])
        else:
            kw["type"] = PARSERS.get(m["kind"], str)
            if m["choices"]:
                kw["choices"] = m["choices"]
            if m["metavar"]:
                kw["metavar"] = m["metavar"]
        g.add_argument(*m["flags"], **kw)


def options_of(args, cls=None):
    """The style options (or cls's) given on the command line (and the subcommand's defaults), as keywords."""
    names = {f.name for f in config.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


class Stopper:
    """Signal handling for a run: the first Ctrl-C or SIGTERM once the run polls it (its first evaluation) asks the
    run to stop at its next evaluation (it then writes the best image so far); a second one aborts at once, and so
    does the first before the run has begun (reading files, loading weights, connecting to a cluster: there is
    nothing to write yet, and a setup step such as a connect may never reach a poll)."""

    def __init__(self, then="writing the best image so far"):
        self.reason, self.old, self.then, self.polled = "", {}, then, False

    def __call__(self):
        self.polled = True
        return self.reason

    def _handle(self, signum, frame):
        if self.reason or not self.polled:
            raise KeyboardInterrupt() if signum == signal.SIGINT else Terminated()
        self.reason = signal.Signals(signum).name
        print(f"\nvggnumpy: {self.reason}: stopping after this iteration and {self.then} (again to abort at once)",
              file=sys.stderr)

    def __enter__(self):
        for s in (signal.SIGINT, signal.SIGTERM):
            self.old[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc):
        for s, h in self.old.items():
            signal.signal(s, h)


class Terminated(BaseException):
    """SIGTERM, raised where the program is, so that every temporary file is removed on the way out."""


def _terminate(signum, frame):
    raise Terminated()


def _stylize(args, content, styles, output):
    from .api import stylize
    with Stopper() as stop:
        res = stylize(content, styles, output, stop=stop, **options_of(args))
    return {"": 0, "SIGINT": 130, "SIGTERM": 143}[res.interrupted]


def cmd_style(args):
    return _stylize(args, args.content, args.styles, args.output)


def cmd_demo(args):
    from . import demo, images
    from .api import check_job
    stem, ext = os.path.splitext(args.output)
    names = (f"{stem}_content{ext}", f"{stem}_style{ext}")
    check_job(config.Job(None, (None,), args.output, config.make(**options_of(args))))    # drawn below
    for name in names:
        images.check_output_path(name)
    content, style = demo.landscape(), demo.swirls()
    images.save_image(names[0], content)
    images.save_image(names[1], style)
    print(f"vggnumpy demo: drew {names[0]} (a landscape) and {names[1]} (brush strokes)", file=sys.stderr)
    return _stylize(args, content, [style], args.output)


def cmd_video(args):
    from .video import stylize_video
    with Stopper("keeping the frames already finished; rerun the same command to go on") as stop:
        res = stylize_video(args.input, args.styles, args.output, stop=stop,
                            **options_of(args, config.VideoOptions), **options_of(args))
    return {"": 0, "SIGINT": 130, "SIGTERM": 143}[res.interrupted]


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
    v.add_argument("styles", nargs="+", metavar="style", help="one or more paintings")
    v.add_argument("-o", "--output", default="out.mp4", help="output video (.mp4, .mov, .mkv, .avi) or a "
                   "folder for numbered PNG frames (default out.mp4)")
    add_style_options(v, config.VideoOptions)
    add_style_options(v)
    v.set_defaults(func=cmd_video)
    from . import batch_cli, explain_cli, weights_cli
    batch_cli.add_parser(sub)
    weights_cli.add_parser(sub)
    explain_cli.add_parser(sub)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    from .images import ImageError
    from .weights import WeightsError
    warnings.filterwarnings("ignore", category=UserWarning, module="vggnumpy")
    old = signal.signal(signal.SIGTERM, _terminate)
    try:
        return args.func(args)
    except (ImageError, WeightsError, ValueError, RuntimeError, OSError) as e:
        print(f"vggnumpy: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:
        print("vggnumpy: error: out of memory; lower --size (or --style-scale), or use a machine with more memory",
              file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vggnumpy: aborted (Ctrl-C); the output was not written", file=sys.stderr)
        return 130
    except Terminated:
        print("vggnumpy: aborted (SIGTERM); the output was not written", file=sys.stderr)
        return 143
    finally:
        signal.signal(signal.SIGTERM, old)


if __name__ == "__main__":
    sys.exit(main())


def options_table(cls=None):
    """The README's options table, made from config.Options or VideoOptions (tests/test_readme.py keeps the README
    equal to it)."""
    rows = ["| option | default | meaning |", "|---|---|---|"]
    if cls is None:
        rows.append("| `-o, --output` | out.png | output, PNG or JPEG by extension |")
    for f in config.fields(cls):
        m = f.metadata
        flags = ", ".join(m["flags"]) + (f" {m['metavar']}" if m["metavar"] else "")
        d = default_text(f) or ("off" if m["kind"] == "flag" else "on" if m["kind"] == "noflag" else "none")
        meaning = m["help"] + (f"; one of {', '.join(m['choices'])}" if m["choices"] else "")
        if m["lo"] is not None:
            num = (lambda v: str(int(v))) if "int" in m["kind"] else (lambda v: f"{v:g}")
            above = f.name in ("style_scale", "learning_rate")
            meaning += f"; {'above' if above else 'from'} {num(m['lo'])} {'up ' if above else ''}to {num(m['hi'])}"
        rows.append(f"| `{flags}` | {d} | {meaning} |")
    return "\n".join(rows)
