"""The contact sheet of a batch: photos as rows, paintings and settings as columns, the inputs in the margins (Pillow)."""
import os
import textwrap

GAP = 6
LABEL_LINES = 3
GREY = (225, 225, 225)


def _font():
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=12)
    except TypeError:                                   # Pillow < 10.1
        return ImageFont.load_default()


def layout(n_rows, n_cols, thumb, label_h=44):
    """Boxes (x0, y0, x1, y1): {'corner'}, {('row', r)}, {('col', c)} headers and {(r, c)} cells, and the size."""
    cell = thumb + GAP
    top = thumb + label_h + GAP                         # a column header: the paintings, then the label
    boxes = {("row", r): (GAP, top + r * cell, GAP + thumb, top + r * cell + thumb) for r in range(n_rows)}
    for c in range(n_cols):
        x0 = GAP + (c + 1) * cell
        boxes[("col", c)] = (x0, GAP, x0 + thumb, GAP + thumb)
        for r in range(n_rows):
            boxes[(r, c)] = (x0, top + r * cell, x0 + thumb, top + r * cell + thumb)
    return boxes, (GAP + (n_cols + 1) * cell, top + n_rows * cell + label_h)


def _open(path, w, h):
    """The image at `path` fitted into w x h (aspect kept), or None when it cannot be read."""
    from PIL import Image
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            im.thumbnail((max(1, w), max(1, h)), Image.LANCZOS)
            return im
    except (OSError, ValueError, TypeError):
        return None


def _paste(sheet, draw, box, paths, text=None):
    """One or more images side by side, centred in box; a grey box with `text` where one cannot be read."""
    x0, y0, x1, y1 = box
    w = (x1 - x0) // max(1, len(paths))
    for k, path in enumerate(paths):
        im = _open(path, w - (2 if len(paths) > 1 else 0), y1 - y0) if path else None
        if im is None:
            draw.rectangle((x0 + k * w, y0, x0 + (k + 1) * w - 1, y1 - 1), fill=GREY)
            _text(draw, (x0 + k * w + 4, y0 + 4), text or "missing", w - 8)
            continue
        sheet.paste(im, (x0 + k * w + (w - im.width) // 2, y0 + (y1 - y0 - im.height) // 2))


def _text(draw, xy, text, width):
    """Up to LABEL_LINES lines of `text` wrapped to about `width` pixels, the last one cut with an ellipsis."""
    chars = max(4, width // 7)
    lines = textwrap.wrap(str(text), chars) or [""]
    if len(lines) > LABEL_LINES:
        lines = lines[:LABEL_LINES]
        lines[-1] = lines[-1][:chars - 1] + "…"
    draw.multiline_text(xy, "\n".join(lines), fill=(0, 0, 0), font=_font(), spacing=2)


def contact_sheet(path, rows, cols, cells, thumb=160, title=""):
    """Write the sheet as a PNG at `path` (atomically) and return its (width, height).

    rows: [(label, photo path)]; cols: [(label, [painting paths])]; cells: {(r, c): an output file, None (not
    run) or an error text (anything that is not a file)}."""
    from PIL import Image, ImageDraw
    from .paths import atomic_write
    boxes, size = layout(len(rows), len(cols), thumb)
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, photo) in enumerate(rows):
        _paste(sheet, draw, boxes[("row", r)], [photo])
        x0, _, _, y1 = boxes[("row", r)]
        _text(draw, (x0, y1 - 14), label, thumb)
    for c, (label, paintings) in enumerate(cols):
        _paste(sheet, draw, boxes[("col", c)], list(paintings))
        x0, _, _, y1 = boxes[("col", c)]
        _text(draw, (x0, y1 + 3), label, thumb)
    for (r, c), what in cells.items():
        ok = isinstance(what, str) and os.path.isfile(what)
        _paste(sheet, draw, boxes[(r, c)], [what if ok else None], text="not run" if what is None else what)
    if title:
        _text(draw, (GAP, size[1] - 30), title, size[0])
    with atomic_write(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return size
