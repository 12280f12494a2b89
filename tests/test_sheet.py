"""The contact sheet: each output in its row and column, the inputs in the margins, failures drawn, files written safely."""
import os

import numpy as np
from PIL import Image

from vggnumpy.sheet import GREY, contact_sheet, layout


def _solid(path, rgb, size):
    Image.new("RGB", size, rgb).save(path)
    return str(path)


def _centre(img, box):
    x0, y0, x1, y1 = box
    return tuple(img.getpixel(((x0 + x1) // 2, (y0 + y1) // 2)))


def test_each_output_sits_in_its_row_and_column(tmp_path):
    colours = {(0, 0): (255, 0, 0), (0, 1): (0, 255, 0), (0, 2): (0, 0, 255), (1, 1): (255, 255, 0)}
    cells = {k: _solid(tmp_path / f"o{k[0]}{k[1]}.png", c, (60, 40 + 10 * k[1])) for k, c in colours.items()}
    cells[(1, 0)] = "failed: file not found"
    cells[(1, 2)] = None
    rows = [("a", _solid(tmp_path / "a.png", (10, 20, 30), (50, 80))), ("b", _solid(tmp_path / "b.png", (200, 100, 50), (90, 30)))]
    cols = [("s1", [_solid(tmp_path / "s1.png", (90, 0, 90), (40, 40))]),
            ("s2", [_solid(tmp_path / "s2.png", (0, 90, 90), (40, 40)), _solid(tmp_path / "s3.png", (90, 90, 0), (40, 40))]),
            ("a very long label that has to wrap over several lines and then be cut short at the end", [])]
    old = os.umask(0o027)
    try:
        size = contact_sheet(str(tmp_path / "sheet.png"), rows, cols, cells, thumb=64)
    finally:
        os.umask(old)
    boxes, want = layout(2, 3, 64)
    assert size == want
    img = Image.open(tmp_path / "sheet.png").convert("RGB")
    assert img.size == want
    for k, c in colours.items():
        assert _centre(img, boxes[k]) == c, k
    assert _centre(img, boxes[("row", 0)]) == (10, 20, 30) and _centre(img, boxes[("row", 1)]) == (200, 100, 50)
    assert _centre(img, boxes[("col", 0)]) == (90, 0, 90)
    x0, y0, x1, y1 = boxes[("col", 1)]                  # a blend: both paintings side by side
    assert tuple(img.getpixel((x0 + 16, (y0 + y1) // 2))) == (0, 90, 90)
    assert tuple(img.getpixel((x1 - 16, (y0 + y1) // 2))) == (90, 90, 0)
    x0, y0, x1, y1 = boxes[(1, 2)]
    assert tuple(img.getpixel((x1 - 3, y1 - 3))) == GREY            # not run: a grey cell
    assert os.stat(tmp_path / "sheet.png").st_mode & 0o777 == 0o640
    assert [n for n in os.listdir(tmp_path) if n.startswith(".")] == []


def test_a_missing_input_is_drawn_not_raised(tmp_path):
    size = contact_sheet(str(tmp_path / "s.png"), [("gone", str(tmp_path / "nothere.jpg"))],
                         [("x", [str(tmp_path / "nothere2.jpg")])], {(0, 0): str(tmp_path / "nothere3.png")}, thumb=48)
    img = np.asarray(Image.open(tmp_path / "s.png").convert("RGB"))
    assert img.shape[:2] == size[::-1] and (img == GREY).all(axis=2).mean() > 0.1
