"""The style options on the command line, made from config.Options: one argument per field, the defaults as help says \
them, and the README's options table."""
import argparse

from .. import config


def comma_items(text):
    """The items of a comma-separated list, stripped, blanks dropped."""
    return [v.strip() for v in text.split(",") if v.strip()]


def comma_list(parse, bad, empty=None):
    """An argparse type= for a comma-separated list: its comma_items, each through parse. When an item
    raises ValueError the error reads "BAD, got 'TEXT'"; with empty given a list with no item is refused the same
    way ("EMPTY, got 'TEXT'"), else it is returned as []."""
    def convert(text):
        try:
            out = [parse(v) for v in comma_items(text)]
        except ValueError:
            raise argparse.ArgumentTypeError(f"{bad}, got {text!r}") from None
        if not out and empty is not None:
            raise argparse.ArgumentTypeError(f"{empty}, got {text!r}")
        return out
    return convert


def _one(parse, what):
    def convert(text):
        try:
            return parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    return convert


PARSERS = {"int": _one(int, "a whole number"), "float": _one(float, "a number"), "path": str, "bytes": str,
           "ints": comma_list(int, "expected comma-separated whole numbers"),
           "floats": comma_list(float, "expected comma-separated numbers"),
           "names": comma_list(str, "expected comma-separated names")}
GRID_HELP = " (in a batch: several values separated by commas make a grid)"      # add_style_options(grid=...)


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


def add_style_options(p, cls=None, grid=None):
    """One argument per field of config.Options (or cls), in its group; unset options stay unset (the default
    applies). grid(field), when given, may return a type= taking a list of values for that field (vggnumpy batch's
    grid): the option then takes it, without choices, and its help says so."""
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
        as_list = grid and grid(f)
        if as_list:
            kw.update(type=as_list, help=kw["help"] + GRID_HELP)
            kw.pop("choices", None)
        g.add_argument(*m["flags"], **kw)


def options_of(args, cls=None):
    """The style options (or cls's) given on the command line (and the subcommand's defaults), as keywords."""
    names = {f.name for f in config.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names}


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
            above = f.name in config.ABOVE_LO
            meaning += f"; {'above' if above else 'from'} {num(m['lo'])} {'up ' if above else ''}to {num(m['hi'])}"
        rows.append(f"| `{flags}` | {d} | {meaning} |")
    return "\n".join(rows)
