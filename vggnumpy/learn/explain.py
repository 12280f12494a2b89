"""The network as a table for learners: each layer's output shape, parameters, multiply-adds, memory and reach.

One row per layer of arch.py's table (conv, relu, pool), for one input image of height x width pixels:

- shape: (C, H, W) of the layer's output (arch.feature_shapes).
- params: a conv's weights (cout * cin * k * k) and biases (cout); ReLU and pooling have none.
- macs: multiply-adds of a conv, k * k * cin * cout * H_out * W_out (the bias additions are not counted). ReLU and
  pooling do none: a ReLU compares each value with 0, a max pool compares and an average pool adds and divides.
- forward bytes: the layer's float32 output, 4 * C * H * W. The network runs a ReLU in place over its conv's output
  (network.py) unless the conv's own output was asked for, so a conv row and the ReLU row after it are normally one
  array: forward_arrays() counts each array once, the sum of the column (as memory.features_bytes) counts both.
- backward bytes: what the backward pass must keep from the forward for this layer (the kernels' caches), no
  weight gradients being taken (style transfer optimises pixels only):
    conv     0: its input gradient needs only its kernel (held anyway), never its input;
    relu     1 byte per output value, the mask out > 0 (when fused into the conv before, the conv holds it;
             the same bytes, counted on the ReLU's row);
    max pool 1 byte per output value, the index of the window's winning tap;
    avg pool 0: the gradient is spread evenly, the geometry is all it needs.
  The backward pass itself also holds the gradient it passes down, at most two float32 layer-sized arrays at once
  (the one coming in and the one going out); that is transient and is not in the column.
- receptive field R, stride J and offset s (arch.receptive): a unit u of the layer reads the input pixels
  J u + s .. J u + s + R - 1 along each axis.
- halo: the pixels a unit reaches beyond its own stride cell J u .. J u + J - 1, max(-s, s + R - J); tiling.halo
  rounds the deepest asked layer's halo up to a multiple of its stride to place tiles.
"""
import textwrap
from dataclasses import dataclass

from ..nn import arch as archmod
from ..nn.arch import receptive


@dataclass(frozen=True)
class Row:
    """One layer of the table (see the module docstring for each field's rule)."""
    name: str
    kind: str
    shape: tuple            # (C, H, W) of the output
    params: int
    macs: int
    forward_bytes: int
    backward_bytes: int
    receptive: int          # R, input pixels along each axis
    stride: int             # J, input pixels between neighbouring units
    offset: int             # s, first input pixel a unit reads, relative to J u
    halo: int


def parse_size(text):
    """'512' -> (512, 512); '384x512' -> (384, 512) (height x width). ValueError naming --size otherwise."""
    parts = str(text).lower().replace(" ", "").split("x")
    try:
        sides = [int(p) for p in parts]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) < 1:
        raise ValueError(f"--size {text!r}: expected a side in pixels (512) or HEIGHTxWIDTH (384x512), "
                         f"whole numbers of at least 1")
    return (sides[0], sides[-1])


def check_arch(arch):
    """arch itself, or ValueError naming --arch."""
    if arch not in archmod.ARCHS:
        raise ValueError(f"--arch {arch!r}: unknown network; known: {', '.join(sorted(archmod.ARCHS))}")
    return arch


def _deepest(arch, up_to):
    """Index of the last row to show: `up_to`'s, or the table's last. ValueError naming --layers-up-to."""
    names = archmod.layer_names(arch)
    if up_to is None:
        return len(names) - 1
    if up_to not in names:
        raise ValueError(f"--layers-up-to {up_to!r}: no such layer in {arch}; layers are {', '.join(names)}")
    return names.index(up_to)


def _cost(kind, p, shape, pooling):
    """(params, macs, backward bytes) of one layer whose output is shape (C, H, W)."""
    c, h, w = shape
    if kind == "conv":
        weights = p["cout"] * p["cin"] * p["k"] * p["k"]
        return weights + p["cout"], weights * h * w, 0
    if kind == "relu":
        return 0, 0, c * h * w                      # bool mask, one byte per value
    if kind == "pool":
        return 0, 0, c * h * w if pooling == "max" else 0      # uint8 winning tap per value
    raise ValueError(f"unknown layer type {kind}")


def _check_fits(arch, height, width, shapes, rows):
    """ValueError naming --size when some shown layer would have no pixel at this input size."""
    for name, _, _ in rows:
        c, h, w = shapes[name]
        if h < 1 or w < 1:
            deepest = rows[-1][0]
            side = archmod.min_input_size(arch, [deepest])
            raise ValueError(f"--size {height}x{width} is too small for {arch} up to {deepest}: {name} would be "
                             f"{c}x{h}x{w}; the input needs at least {side}x{side} pixels")


def layer_rows(arch, height, width, up_to=None, pooling="max"):
    """The table's rows, from the first layer to `up_to` (default: the last), for a height x width input."""
    check_arch(arch)
    if pooling not in ("max", "avg"):
        raise ValueError(f"--pooling {pooling!r}: expected max or avg")
    if height < 1 or width < 1:
        raise ValueError(f"--size {height}x{width}: each side needs at least 1 pixel")
    table = archmod.get_table(arch)[:_deepest(arch, up_to) + 1]
    shapes = archmod.feature_shapes(arch, height, width)
    _check_fits(arch, height, width, shapes, table)
    rows = []
    for name, kind, p in table:
        shape = shapes[name]
        params, macs, back = _cost(kind, p, shape, pooling)
        j, s, r = receptive(arch, name)
        rows.append(Row(name, kind, shape, params, macs, 4 * shape[0] * shape[1] * shape[2], back, r, j, s,
                        max(-s, s + r - j)))
    return rows


def totals(rows):
    """Sums over the rows: params, macs, forward_bytes (every row's output), backward_bytes."""
    return dict(params=sum(r.params for r in rows), macs=sum(r.macs for r in rows),
                forward_bytes=sum(r.forward_bytes for r in rows), backward_bytes=sum(r.backward_bytes for r in rows))


def forward_arrays(rows):
    """Bytes of the distinct float32 arrays a forward allocates: a ReLU's output overwrites its conv's in place."""
    in_place = lambda i: rows[i].kind == "relu" and i > 0 and rows[i - 1].kind == "conv"
    return sum(r.forward_bytes for i, r in enumerate(rows) if not in_place(i))


def count(n):
    """12345678 -> '12,345,678'."""
    return f"{n:,}"


def size_text(n):
    """Bytes as B, KiB, MiB or GiB with three significant digits or so: 1536 -> '1.5 KiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            v = n / scale
            return f"{v:.1f} {unit}" if v < 100 else f"{v:,.0f} {unit}"
    return f"{n} B"


COLUMNS = [("layer", "<"), ("kind", "<"), ("output CxHxW", ">"), ("params", ">"), ("mult-adds", ">"),
           ("forward", ">"), ("backward", ">"), ("field", ">"), ("stride", ">"), ("halo", ">")]


def _kind(kind, p, pooling):
    """'conv 3x3', 'conv 11x11/4', 'relu', 'maxpool 2x2/2', 'maxpool 3x3/2 ceil'."""
    if kind == "conv":
        return f"conv {p['k']}x{p['k']}" + (f"/{p['stride']}" if p["stride"] > 1 else "")
    if kind == "pool":
        return f"{pooling}pool {p['k']}x{p['k']}/{p['stride']}" + (" ceil" if p["ceil"] else "")
    return kind


def _cells(r, kind):
    """One row's cells, in COLUMNS' order."""
    return [r.name, kind, "x".join(map(str, r.shape)), count(r.params), count(r.macs), size_text(r.forward_bytes),
            size_text(r.backward_bytes), str(r.receptive), str(r.stride), str(r.halo)]


def _lay_out(cells):
    """Rows of cells as aligned lines, with a rule under the header and above the last row."""
    widths = [max(len(row[i]) for row in cells) for i in range(len(COLUMNS))]
    fmt = lambda row: "  ".join(f"{c:{a}{w}}" for c, (_, a), w in zip(row, COLUMNS, widths)).rstrip()
    rule = "-" * len(fmt(["-" * w for w in widths]))
    return [fmt(cells[0]), rule] + [fmt(c) for c in cells[1:-1]] + [rule, fmt(cells[-1])]


def table_lines(arch, height, width, rows, pooling="max"):
    """The table as lines of text: a title, one line per row, the totals, and what the columns mean."""
    table = {name: p for name, _, p in archmod.get_table(arch)}
    cells = [[h for h, _ in COLUMNS]] + [_cells(r, _kind(r.kind, table[r.name], pooling)) for r in rows]
    t = totals(rows)
    cells.append(["total", "", "", count(t["params"]), count(t["macs"]), size_text(t["forward_bytes"]),
                  size_text(t["backward_bytes"]), "", "", ""])
    title = (f"{arch} up to {rows[-1].name}, one {height}x{width} input image (3x{height}x{width} float32, "
             f"{size_text(12 * height * width)}), {pooling} pooling")
    return [title, ""] + _lay_out(cells) + [""] + _notes(rows, t)


def _notes(rows, t, width=110):
    """What the columns mean, with this table's own numbers, wrapped to `width`."""
    notes = [
        f"params: weights + biases ({size_text(4 * t['params'])} as float32). mult-adds: conv k*k*cin*cout*Hout*Wout; "
        f"ReLU and pooling do none (0).",
        f"forward: the float32 output of each layer. ReLUs run in place over their conv's output, so the arrays "
        f"allocated come to {size_text(forward_arrays(rows))}.",
        "backward: what the backward pass keeps per layer: 1 byte per value for a ReLU's mask and a max pool's "
        "winning tap, nothing for a conv (no weight gradients) or an average pool.",
        "field: the receptive field, input pixels a unit sees along each side; stride: input pixels between "
        "neighbouring units; halo: pixels a unit reaches beyond its own stride cell (what a tile needs around it).",
    ]
    if rows[-1].name == "pool5":
        notes.append(f"The VGG paper's Table 2 counts the three fully connected layers too, left out here as style "
                     f"transfer does not use them: fc6 {FC_PARAMS[0]:,}, fc7 {FC_PARAMS[1]:,}, fc8 {FC_PARAMS[2]:,}, "
                     f"so {t['params'] + sum(FC_PARAMS):,} in all.")
    return [line for n in notes for line in textwrap.wrap(n, width, subsequent_indent="  ")]


# VGG's classifier (Simonyan and Zisserman 2015): fc6 512*7*7 -> 4096, fc7 4096 -> 4096, fc8 4096 -> 1000, with biases
FC_PARAMS = (512 * 7 * 7 * 4096 + 4096, 4096 * 4096 + 4096, 4096 * 1000 + 1000)


def weights_lines(w):
    """A weights file's input convention, source, description and trained flag, as lines of text."""
    order = "BGR (channels reversed)" if w.channel_order == "BGR" else w.channel_order
    return [f"weights:     {w.path or '(in memory)'}",
            f"arch:        {w.arch} ({'pretrained' if w.trained else 'UNTRAINED: random weights, not trained'})",
            f"description: {w.description or '-'}",
            f"source:      {w.source or '-'}",
            f"input:       channels {order}, pixels in [0, 1] x {w.pixel_scale:g}, "
            f"mean {tuple(round(float(m), 4) for m in w.mean)}, std {tuple(round(float(s), 4) for s in w.std)}",
            f"             the network sees ((x[channels] * {w.pixel_scale:g}) - mean) / std", ""]
