"""The contact sheet of a batch: photos as rows, paintings and settings as columns, the inputs in the margins \
(Pillow)."""
import os
import re
import warnings

GAP = 6                     # the thin white gap between boxes, in pixels
GREY = (225, 225, 225)      # a cell with no picture: not run, failed, or an input that cannot be read
BLACK = (0, 0, 0)
FONT_SIZE = 12
COL_LABEL_LINES = 3         # a column's label under its paintings, then an ellipsis
ROW_LABEL_LINES = 2         # a photo's label under it
_STATUS = re.compile(r"[A-Za-z][\w ]*: ")       # "failed: ...", "error: ...": an error text, not a file name


def _font():
    """Pillow's default font at FONT_SIZE; the fixed-size bitmap one where Pillow < 10.1 or no FreeType."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=FONT_SIZE)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def _line_h(font):
    """Pixels from one line of text to the next."""
    return font.getbbox("Agjy|")[3] + 3


def layout(n_rows, n_cols, thumb, title=False, line_h=None):
    """Where everything goes: ({key: (x0, y0, x1, y1)}, (width, height)); x1 and y1 are exclusive.

    Keys: (r, c) the output of row r, column c; ('row', r) the photo's thumbnail in the left margin and
    ('row_label', r) its label under it; ('col', c) the paintings at the top and ('col_label', c) their label;
    'title' when `title`. Every picture box is thumb x thumb.
    """
    line_h = _line_h(_font()) if line_h is None else line_h
    title_h = line_h + GAP if title else 0
    col_y = GAP + title_h
    top = col_y + thumb + 2 + COL_LABEL_LINES * line_h + GAP          # the first row's top edge
    band = thumb + 2 + ROW_LABEL_LINES * line_h + GAP                 # one row: the pictures, the photo's label
    width = GAP + (n_cols + 1) * (thumb + GAP)
    boxes = {"title": (GAP, GAP, width - GAP, GAP + line_h)} if title else {}
    for r in range(n_rows):
        y0 = top + r * band
        boxes[("row", r)] = (GAP, y0, GAP + thumb, y0 + thumb)
        boxes[("row_label", r)] = (GAP, y0 + thumb + 2, GAP + thumb, y0 + thumb + 2 + ROW_LABEL_LINES * line_h)
    for c in range(n_cols):
        x0 = GAP + (c + 1) * (thumb + GAP)
        boxes[("col", c)] = (x0, col_y, x0 + thumb, col_y + thumb)
        boxes[("col_label", c)] = (x0, col_y + thumb + 2, x0 + thumb, col_y + thumb + 2 + COL_LABEL_LINES * line_h)
        for r in range(n_rows):
            boxes[(r, c)] = (x0, top + r * band, x0 + thumb, top + r * band + thumb)
    return boxes, (width, top + n_rows * band)


def _thumbnail(path, w, h):
    """The picture at `path` scaled (Lanczos, aspect kept) to fit w x h, as RGB; None when it cannot be read."""
    from PIL import Image, ImageOps
    if not os.path.isfile(path):                         # missing, or a named pipe that would block open()
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                im.draft("RGB", (max(w, h), max(w, h)))     # a JPEG decodes at a fraction of its size
                im = ImageOps.exif_transpose(im)
                if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                    im = im.convert("RGBA")
                    im = Image.alpha_composite(Image.new("RGBA", im.size, "white"), im)
                im = im.convert("RGB")
                scale = min(w / im.width, h / im.height)
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                return im.resize(size, Image.Resampling.LANCZOS)
    except (OSError, ValueError, SyntaxError, TypeError, EOFError, Image.DecompressionBombError):
        return None


def _fit(draw, font, text, width):
    """The longest prefix of `text` that, with an ellipsis, fits in `width` pixels."""
    dots = "…" if _freetype(font) else "..."
    while text and draw.textlength(text.rstrip() + dots, font=font) > width:
        text = text[:-1]
    return text.rstrip() + dots


def _wrap(draw, font, text, width, max_lines):
    """`text` broken into lines at most `width` pixels wide, words kept whole where they fit; at most
    `max_lines` lines, the last cut with an ellipsis when there was more."""
    fits = lambda s: draw.textlength(s, font=font) <= width
    lines = []
    for para in str(text)[:2000].splitlines() or [""]:
        line = ""
        for word in para.split():
            if fits((line + " " + word).strip()):
                line = (line + " " + word).strip()
                continue
            if line:
                lines.append(line)
            while len(word) > 1 and not fits(word):             # a word wider than the box: break it
                k = max([i for i in range(1, len(word)) if fits(word[:i])] or [1])
                lines.append(word[:k])
                word = word[k:]
            line = word
        lines.append(line)
        if len(lines) > max_lines:
            break
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [_fit(draw, font, " ".join(lines[max_lines - 1:]), width)]
    return lines


def _write(draw, font, box, text, max_lines=None, centre=False):
    """`text` wrapped inside box (x0, y0, x1, y1), black, from its top-left corner or centred."""
    x0, y0, x1, y1 = box
    line_h = _line_h(font)
    max_lines = max_lines or max(1, (y1 - y0) // line_h)
    lines = _wrap(draw, font, _drawable(font, text), x1 - x0, max_lines)
    y = y0 + ((y1 - y0 - len(lines) * line_h) // 2 if centre else 0)
    for line in lines:
        x = x0 + ((x1 - x0 - draw.textlength(line, font=font)) // 2 if centre else 0)
        draw.text((x, y), line, fill=BLACK, font=font)
        y += line_h


def _freetype(font):
    """True for a FreeType font (any character); False for Pillow's old bitmap font (Latin-1 only)."""
    from PIL import ImageFont
    return isinstance(font, ImageFont.FreeTypeFont)


def _drawable(font, text):
    """Text the font can draw: the bitmap fallback font knows Latin-1 only."""
    return str(text) if _freetype(font) else str(text).encode("latin-1", "replace").decode("latin-1")


def _paste(sheet, draw, font, box, paths):
    """The pictures side by side, each fitted to its share of box and centred in it; a grey 'missing' box
    for any that cannot be read."""
    x0, y0, x1, y1 = box
    n = len(paths)
    w = (x1 - x0 - 2 * (n - 1)) // n
    for k, path in enumerate(paths):
        sx = x0 + k * (w + 2)
        sub = (sx, y0, sx + w, y1)
        im = _thumbnail(path, w, y1 - y0) if path and w > 0 else None
        if im is None:
            _grey(draw, font, sub, "missing")
        else:
            sheet.paste(im, (sx + (w - im.width) // 2, y0 + (y1 - y0 - im.height) // 2))


def _grey(draw, font, box, text):
    """A light-grey box with `text` centred in it."""
    draw.rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=GREY)
    _write(draw, font, (box[0] + 4, box[1] + 4, box[2] - 4, box[3] - 4), text, centre=True)


def _cell(what):
    """('picture', path) or ('text', what to say) for a value of `cells`."""
    if what is None:
        return "text", "not run"
    if isinstance(what, os.PathLike):
        return "picture", os.fspath(what)
    what = str(what)
    if os.path.exists(what):
        return "picture", what
    looks_like_file = (os.sep in what or re.search(r"\.[A-Za-z0-9]{2,5}$", what)) and not _STATUS.match(what)
    return ("picture", what) if looks_like_file else ("text", what)


def contact_sheet(path, rows, cols, cells, thumb=160, title=""):
    """Draw the sheet and write it as a PNG at `path` (atomically, with the mode open() gives); return (width, height).

    rows: [(label, photo path)], the left margin; cols: [(label, [painting paths])], the top margin;
    cells: {(row index, col index): the output's path, None (not run) or a short error text}; a grid position
    absent from `cells` is drawn as not run. A file that cannot be read is drawn as a grey 'missing' box.
    """
    from PIL import Image, ImageDraw
    from ..files.paths import atomic_write
    outside = [k for k in cells if not (isinstance(k, tuple) and len(k) == 2 and k[0] in range(len(rows))
                                        and k[1] in range(len(cols)))]
    if outside:
        raise ValueError(f"contact sheet: cells {outside[:3]} are outside the {len(rows)} x {len(cols)} grid")
    font = _font()
    boxes, size = layout(len(rows), len(cols), thumb, title=bool(title), line_h=_line_h(font))
    sheet = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        _write(draw, font, boxes["title"], title, 1)
    for r, (label, photo) in enumerate(rows):
        _paste(sheet, draw, font, boxes[("row", r)], [photo])
        _write(draw, font, boxes[("row_label", r)], label, ROW_LABEL_LINES)
    for c, (label, paintings) in enumerate(cols):
        _paste(sheet, draw, font, boxes[("col", c)], list(paintings) or [None])
        _write(draw, font, boxes[("col_label", c)], label, COL_LABEL_LINES)
    for r in range(len(rows)):
        for c in range(len(cols)):
            kind, what = _cell(cells.get((r, c)))
            if kind == "picture":
                _paste(sheet, draw, font, boxes[(r, c)], [what])
            else:
                _grey(draw, font, boxes[(r, c)], what)
    with atomic_write(path, suffix=".png") as tmp:
        sheet.save(tmp, format="PNG")
    return size
