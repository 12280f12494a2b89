"""The contact sheet: each output in its row and column, the inputs in the margins, failures drawn, files written \
safely."""
import os

import numpy as np
import pytest
from PIL import Image

from vggnumpy.batch import sheet
from vggnumpy.files.paths import OutputError
from vggnumpy.batch.sheet import GREY, contact_sheet, layout

RED, GREEN, BLUE, YELLOW = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)
THUMB = 64


def _solid(path, rgb, size):
    Image.new("RGB", size, rgb).save(path)
    return str(path)


def _px(img, x, y):
    return tuple(int(v) for v in img[y, x])


def _centre(img, box):
    x0, y0, x1, y1 = box
    return _px(img, (x0 + x1) // 2, (y0 + y1) // 2)


def _crop(img, box):
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1]


def _dark(region):
    """How many pixels of region are text-dark."""
    return int((region.max(axis=2) < 100).sum())


def _grid(tmp_path):
    """A 2 x 3 batch: outputs of different aspect ratios, one failed cell, one not run; a blend in column 1."""
    outs = {(0, 0): (RED, (60, 40)), (0, 1): (GREEN, (30, 90)), (0, 2): (BLUE, (90, 30)), (1, 1): (YELLOW, (50, 50))}
    cells = {k: _solid(tmp_path / f"o{k[0]}{k[1]}.png", c, s) for k, (c, s) in outs.items()}
    cells[(1, 0)] = "failed: file not found"
    cells[(1, 2)] = None
    rows = [("photo a", _solid(tmp_path / "a.png", (10, 20, 30), (50, 80))),
            ("photo b", _solid(tmp_path / "b.jpg", (200, 100, 50), (90, 30)))]
    cols = [("s1", [_solid(tmp_path / "s1.png", (90, 0, 90), (40, 40))]),
            ("s2+s3", [_solid(tmp_path / "s2.png", (0, 90, 90), (40, 40)),
                       _solid(tmp_path / "s3.png", (90, 90, 0), (40, 40))]),
            ("s4, style weight 5, content weight 1, a very long label that has to wrap over several lines and then be "
             "cut short with an ellipsis", [_solid(tmp_path / "s4.png", (0, 0, 90), (70, 20))])]
    return rows, cols, cells, {k: c for k, (c, _) in outs.items()}


def _draw(tmp_path, **kw):
    rows, cols, cells, colours = _grid(tmp_path)
    out = tmp_path / "sheet.png"
    size = contact_sheet(str(out), rows, cols, cells, thumb=THUMB, **kw)
    return size, np.asarray(Image.open(out).convert("RGB")), colours


def test_each_output_sits_in_its_row_and_column(tmp_path):
    size, img, colours = _draw(tmp_path)
    boxes, want = layout(2, 3, THUMB)
    assert size == want and img.shape[:2] == (want[1], want[0])
    for k, c in colours.items():
        assert _centre(img, boxes[k]) == c, k
    for k in [(1, 0), (1, 2)]:                                  # failed and not run: grey, with words on it
        x0, y0, x1, y1 = boxes[k]
        assert _px(img, x0 + 1, y0 + 1) == GREY and _px(img, x1 - 2, y1 - 2) == GREY, k
        assert _dark(_crop(img, boxes[k])) > 20, k
    assert not np.array_equal(_crop(img, boxes[(1, 0)]), _crop(img, boxes[(1, 2)]))   # different words


def test_thumbnails_keep_their_aspect_and_are_centred(tmp_path):
    _, img, _ = _draw(tmp_path)
    boxes, _ = layout(2, 3, THUMB)
    x0, y0, x1, y1 = boxes[(0, 2)]                              # 90 x 30 blue: 64 x 21, white above and below
    cy = (y0 + y1) // 2
    assert _px(img, x0, cy) == BLUE and _px(img, x1 - 1, cy) == BLUE
    assert _px(img, x0 + 5, cy - 14) == (255, 255, 255) and _px(img, x0 + 5, cy + 14) == (255, 255, 255)
    x0, y0, x1, y1 = boxes[(0, 1)]                              # 30 x 90 green: 21 x 64, white left and right
    cx = (x0 + x1) // 2
    assert _px(img, cx, y0) == GREEN and _px(img, cx, y1 - 1) == GREEN
    assert _px(img, cx - 14, y0 + 5) == (255, 255, 255) and _px(img, cx + 14, y0 + 5) == (255, 255, 255)


def test_margins_show_the_photos_and_paintings_with_their_labels(tmp_path):
    _, img, _ = _draw(tmp_path, title="batch of 6 jobs")
    boxes, _ = layout(2, 3, THUMB, title=True)
    assert _centre(img, boxes[("row", 0)]) == (10, 20, 30)
    assert max(abs(a - b) for a, b in zip(_centre(img, boxes[("row", 1)]), (200, 100, 50))) <= 3    # a JPEG
    assert _centre(img, boxes[("col", 0)]) == (90, 0, 90)
    assert _centre(img, boxes[("col", 2)]) == (0, 0, 90)
    x0, y0, x1, y1 = boxes[("col", 1)]                          # a blend: both paintings side by side
    assert _px(img, x0 + 16, (y0 + y1) // 2) == (0, 90, 90)
    assert _px(img, x1 - 16, (y0 + y1) // 2) == (90, 90, 0)
    for key in ["title", ("row_label", 0), ("row_label", 1), ("col_label", 0), ("col_label", 1), ("col_label", 2)]:
        assert _dark(_crop(img, boxes[key])) > 5, key
    # the long label wraps to three lines inside its box: ink in the third line, none below the box
    x0, y0, x1, y1 = boxes[("col_label", 2)]
    line = (y1 - y0) // 3
    assert _dark(img[y0 + 2 * line:y1, x0:x1]) > 5
    assert _dark(img[y1:boxes[(0, 2)][1], x0 - 3:x1 + 3]) == 0
    assert _dark(img[y0:y1, x1:x1 + sheet.GAP]) == 0           # nor beside it


def test_no_title_no_title_line(tmp_path):
    with_title = layout(2, 3, THUMB, title=True)
    without = layout(2, 3, THUMB)
    assert "title" in with_title[0] and "title" not in without[0]
    assert with_title[1][1] > without[1][1] and with_title[1][0] == without[1][0]


def test_missing_and_damaged_inputs_are_drawn_not_raised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                 # short, different names: "missing" is not the name
    with open("bad.png", "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "s.png"
    size = contact_sheet(str(out), [("gone", "gone.jpg"), ("ok", _solid("c.png", RED, (9, 9)))],
                         [("x", ["bad.png"]), ("y", [_solid("p.png", BLUE, (9, 9))])],
                         {(0, 0): "out/none.png", (1, 0): "bad.png", (0, 1): None}, thumb=48)
    img = np.asarray(Image.open(out).convert("RGB"))
    boxes, want = layout(2, 2, 48)
    assert size == want and img.shape[:2] == (want[1], want[0])
    missing = _crop(img, boxes[("row", 0)])                     # a grey box saying "missing"
    assert _px(img, *boxes[("row", 0)][:2]) == GREY and _dark(missing) > 10
    for key in [("col", 0), (0, 0), (1, 0)]:                    # the same words wherever an input is unreadable
        assert np.array_equal(_crop(img, boxes[key]), missing), key
    assert not np.array_equal(_crop(img, boxes[(0, 1)]), missing)   # "not run" says something else
    assert _px(img, *boxes[(1, 1)][:2]) == GREY


def test_written_with_the_umask_and_atomically(tmp_path, monkeypatch):
    rows, cols, cells, _ = _grid(tmp_path)
    out = tmp_path / "sheet.png"
    old = os.umask(0o027)
    try:
        contact_sheet(str(out), rows, cols, cells, thumb=32)
    finally:
        os.umask(old)
    assert os.stat(out).st_mode & 0o777 == 0o640
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []

    def boom(im, fp, *a, **k):                                  # a crash half way through the PNG
        with open(fp, "wb") as f:
            f.write(b"\x89PNG half")
        raise OSError("disk full")
    monkeypatch.setattr(Image.Image, "save", boom)
    with pytest.raises(OutputError, match="other.png: cannot be written: disk full"):
        contact_sheet(str(tmp_path / "other.png"), rows, cols, cells, thumb=32)
    assert not (tmp_path / "other.png").exists() and [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_a_cell_outside_the_grid_is_refused_before_writing(tmp_path):
    rows, cols, cells, _ = _grid(tmp_path)
    with pytest.raises(ValueError, match="outside"):
        contact_sheet(str(tmp_path / "x.png"), rows, cols, {**cells, (2, 0): None}, thumb=32)
    assert not (tmp_path / "x.png").exists()
