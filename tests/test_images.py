"""Reading every kind of image Pillow reads, resizing, writing by extension, colour transfer and clear errors."""
import os

import numpy as np
import pytest
from PIL import Image

from vggnumpy.files import images, paths


def _save(tmp_path, name, im, **kw):
    p = str(tmp_path / name)
    im.save(p, **kw)
    return p


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "CMYK", "I;16", "LA", "1"])
def test_reads_modes_as_rgb(tmp_path, mode, rng):
    arr = (rng.random((20, 30, 3)) * 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    if mode == "I;16":
        im = Image.fromarray((rng.random((20, 30)) * 65535).astype(np.uint16))
        assert im.mode.startswith("I;16")
    else:
        im = im.convert(mode)
    ext = "jpg" if mode == "CMYK" else ("tif" if mode.startswith("I") else "png")
    out = images.load_image(_save(tmp_path, f"a.{ext}", im))
    assert out.shape == (20, 30, 3) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1


def test_sixteen_bit_uses_full_range(tmp_path):
    a = np.full((8, 8), 65535, np.uint16)
    a[:4] = 0
    out = images.load_image(_save(tmp_path, "g16.png", Image.fromarray(a)))
    assert out[0, 0, 0] == 0 and out[7, 7, 0] == pytest.approx(1.0)


def test_transparent_pixels_become_white(tmp_path):
    im = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    out = images.load_image(_save(tmp_path, "t.png", im))
    np.testing.assert_allclose(out, 1.0)


def test_exif_rotation_applied(tmp_path):
    im = Image.new("RGB", (40, 20), (10, 200, 30))
    exif = Image.Exif()
    exif[0x0112] = 6                                   # rotate 90 degrees on display
    p = _save(tmp_path, "r.jpg", im, exif=exif)
    assert images.load_image(p).shape[:2] == (40, 20)


def test_resize_longest_side(tmp_path, rng):
    p = _save(tmp_path, "big.png", Image.fromarray((rng.random((300, 200, 3)) * 255).astype(np.uint8)))
    assert images.load_image(p, size=120).shape == (120, 80, 3)


def test_missing_unreadable_and_too_small_name_the_file(tmp_path):
    with pytest.raises(images.ImageError, match="nope.jpg.*not found"):
        images.load_image(str(tmp_path / "nope.jpg"))
    bad = tmp_path / "notes.png"
    bad.write_text("this is not a picture")
    with pytest.raises(images.ImageError, match="notes.png.*not an image"):
        images.load_image(str(bad))
    trunc = tmp_path / "trunc.png"
    Image.new("RGB", (64, 64), (1, 2, 3)).save(trunc)
    trunc.write_bytes(trunc.read_bytes()[:60])
    with pytest.raises(images.ImageError, match="trunc.png"):
        images.load_image(str(trunc))
    tiny = _save(tmp_path, "tiny.png", Image.new("RGB", (8, 8)))
    with pytest.raises(images.ImageError, match="tiny.png.*too small"):
        images.load_image(tiny, min_side=16)
    thin = _save(tmp_path, "thin.png", Image.new("RGB", (400, 20)))
    with pytest.raises(images.ImageError, match="thin.png.*too small"):
        images.load_image(thin, size=128, min_side=16)


@pytest.mark.parametrize("ext,fmt", [(".png", "PNG"), (".jpg", "JPEG"), (".jpeg", "JPEG")])
def test_writes_by_extension_with_metadata(tmp_path, ext, fmt, rng):
    p = str(tmp_path / f"o{ext}")
    images.save_image(p, rng.random((10, 12, 3)).astype(np.float32), {"weights": "UNTRAINED"})
    with Image.open(p) as im:
        assert im.format == fmt and im.size == (12, 10)
        text = im.info.get("vggnumpy:weights") or im.info.get("comment", b"").decode()
        assert "UNTRAINED" in text
    assert [f for f in os.listdir(tmp_path) if f.startswith(".vggnumpy-")] == []


def test_output_path_checks(tmp_path):
    with pytest.raises(images.ImageError, match="bmp"):
        images.check_output_path(str(tmp_path / "o.bmp"))
    with pytest.raises(paths.OutputError, match="does not exist"):
        images.check_output_path(str(tmp_path / "no" / "o.png"))
    src = tmp_path / "in.png"
    Image.new("RGB", (4, 4)).save(src)
    with pytest.raises(paths.OutputError, match="input"):                  # inputs are checked with the outputs
        paths.check_outputs([("output", str(src))], [("content image", str(src))])


def test_original_colors_keeps_content_chroma(rng):
    content = (0.4 + 0.2 * rng.random((8, 8, 3))).astype(np.float32)      # mild colours: nothing clips
    gray = np.repeat(0.3 + 0.4 * rng.random((8, 8, 1)), 3, axis=2).astype(np.float32)
    out = images.original_colors(gray, content)
    yiq = lambda a: a @ images._RGB2YIQ.T
    inside = (out > 0.001) & (out < 0.999)
    assert inside.all(axis=2).mean() > 0.9
    m = inside.all(axis=2)
    np.testing.assert_allclose(yiq(out)[m][:, 0], yiq(gray)[m][:, 0], atol=1e-5)
    np.testing.assert_allclose(yiq(out)[m][:, 1:], yiq(content)[m][:, 1:], atol=1e-5)
