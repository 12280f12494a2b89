"""Reading, resizing and writing images, and luminance-only colour transfer; pixels are float32 RGB in [0, 1]."""
import os
import warnings

import numpy as np

from .paths import InputError, atomic_write, check_input, check_writable

WRITABLE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG"}
MAX_INPUT_PIXELS = 150_000_000      # 1.8 GB as float32 RGB; a 12000x12000 image declared in a 40 KB PNG is refused


class ImageError(ValueError):
    """An image that cannot be used; the message names the file, the problem and what to do."""


class NotFinite(ValueError):
    """A floating-point image holding NaN or infinite values."""


def _to_rgb_array(im):
    """Any Pillow mode -> (H, W, 3) float32 in [0, 1]. Transparent pixels are laid over white."""
    from PIL import Image
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        a = np.asarray(im.convert("I"), dtype=np.float32)
        top = 65535.0 if im.mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / top, 0, 1)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode == "F":
        a = np.asarray(im, dtype=np.float32)
        if not np.isfinite(a).all():
            raise NotFinite()
        a = np.clip(a / (a.max() if a.max() > 1 else 1.0), 0, 1)
        return np.repeat(a[:, :, None], 3, axis=2)
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        white = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, im)
    return np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0


def check_pixels(path, what, w, h):
    """Refuse, before decoding, an image that declares more pixels than MAX_INPUT_PIXELS."""
    if w * h > MAX_INPUT_PIXELS:
        raise ImageError(f"{path}: {what} is {w}x{h} = {w * h:,} pixels, more than the {MAX_INPUT_PIXELS:,} "
                         f"vggnumpy reads (a decompression bomb, or a picture too large); shrink it first")


def open_image(path, what, read):
    """read(im) on the Pillow image at `path`, after the checks every image file gets: a regular file (a named pipe
    is never opened), at most MAX_INPUT_PIXELS declared (from the header, before read() decodes); every error an
    ImageError naming the file and `what` it is. Still images (load_image) and video frames read through it."""
    from PIL import Image, UnidentifiedImageError
    try:
        check_input(what, path)                 # a named pipe would block open() for ever
    except InputError as e:
        raise ImageError(str(e)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)    # our own limit is checked below
            with Image.open(path) as im:
                check_pixels(path, what, *im.size)
                return read(im)
    except ImageError:
        raise
    except Image.DecompressionBombError:
        raise ImageError(f"{path}: {what} declares more than {MAX_INPUT_PIXELS:,} pixels (a decompression bomb, or "
                         f"a picture too large to read); shrink it first") from None
    except NotFinite:
        raise ImageError(f"{path}: {what} holds NaN or infinite values (a floating-point image); save it with finite "
                         f"values from 0 to 1, e.g. as an 8-bit PNG") from None
    except UnidentifiedImageError:
        raise ImageError(f"{path}: {what} is not an image Pillow can read; "
                         f"give a PNG, JPEG or other image file") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise ImageError(f"{path}: {what} could not be read ({e}); the file may be truncated or damaged") from None


def to_rgb(im):
    """A Pillow image, decoded, as (H, W, 3) float32 RGB in [0, 1] (16-bit grey scaled, transparency over white)."""
    im.load()
    return _to_rgb_array(im)


def load_image(path, size=None, min_side=1, what="image"):
    """Read an image file; EXIF rotation applied; longest side resized to `size` (Lanczos) when given.

    Returns (H, W, 3) float32 RGB in [0, 1]. Raises ImageError naming the file on any problem.
    """
    from PIL import ImageOps
    arr = open_image(path, what, lambda im: to_rgb(ImageOps.exif_transpose(im)))
    h, w = arr.shape[:2]
    if min(h, w) < min_side:
        raise ImageError(f"{path}: {what} is {w}x{h} pixels, too small for the network (each side needs at least "
                         f"{min_side} pixels); use a larger image")
    if size is not None:
        arr = resize(arr, size)
        if min(arr.shape[:2]) < min_side:
            raise ImageError(f"{path}: {what} becomes {arr.shape[1]}x{arr.shape[0]} at size {size}, too small for the "
                             f"network (each side needs at least {min_side} pixels); raise the size or crop the image")
    return arr


def resize(arr, size):
    """(H, W, 3) -> longest side `size`, Lanczos, per channel in float so nothing is quantised."""
    h, w = arr.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    if (nh, nw) == (h, w):
        return arr
    return resize_to(arr, nh, nw)


def resize_to(arr, nh, nw):
    from PIL import Image
    chans = [np.asarray(Image.fromarray(arr[:, :, c]).resize((nw, nh), Image.LANCZOS)) for c in range(arr.shape[2])]
    return np.clip(np.stack(chans, axis=2), 0, 1).astype(np.float32)


def check_output_path(path, what="output"):
    """Refuse, before any work, an image output with no writable format, folder or name (paths.check_writable)."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in WRITABLE:
        raise ImageError(f"{path}: cannot write '{ext or 'no extension'}' files; "
                         f"end the output name in .png, .jpg or .jpeg")
    check_writable(what, path)


def to_uint8(arr):
    return (np.clip(arr, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def save_image(path, arr, metadata=None):
    """Write (H, W, 3) in [0, 1] as PNG or JPEG (by extension) atomically, with the mode open() would give."""
    from PIL import Image, PngImagePlugin
    ext = os.path.splitext(path)[1].lower()
    fmt = WRITABLE.get(ext)
    if fmt is None:
        raise ImageError(f"{path}: cannot write '{ext}' files; use .png, .jpg or .jpeg")
    im = Image.fromarray(to_uint8(arr), "RGB")
    kwargs = {}
    text = "; ".join(f"{k}={v}" for k, v in (metadata or {}).items())
    if fmt == "PNG":
        info = PngImagePlugin.PngInfo()
        for k, v in (metadata or {}).items():
            info.add_text(f"vggnumpy:{k}", str(v))
        kwargs["pnginfo"] = info
    else:
        kwargs.update(quality=95, comment=text.encode("utf-8")[:65000])
    with atomic_write(path, suffix=ext) as tmp:
        im.save(tmp, format=fmt, **kwargs)


def settings_of(path):
    """The settings hash an image of ours was written with (save_image's metadata): a PNG's vggnumpy:settings text,
    or the settings=HASH (16 hex digits) of a JPEG comment that save_image wrote (software=vggnumpy...); else
    None, also for what is not a regular file (a named pipe is never opened)."""
    from PIL import Image
    if not os.path.isfile(path):
        return None
    try:
        with Image.open(path) as im:
            if im.format == "JPEG":
                comment = im.info.get("comment", b"")
            else:
                return getattr(im, "text", {}).get("vggnumpy:settings")
    except (OSError, ValueError):
        return None
    text = comment.decode("utf-8", "replace") if isinstance(comment, bytes) else str(comment)
    fields = dict(part.split("=", 1) for part in text.split("; ") if "=" in part)
    h = fields.get("settings", "")
    ours = fields.get("software", "").startswith("vggnumpy")
    return h if ours and len(h) == 16 and all(c in "0123456789abcdef" for c in h) else None


def save_gif(path, frames, duration_ms=120):
    """An animated GIF of (H, W, 3) frames, written atomically."""
    from PIL import Image
    ims = [Image.fromarray(to_uint8(f), "RGB") for f in frames]
    with atomic_write(path, suffix=".gif") as tmp:
        ims[0].save(tmp, format="GIF", save_all=True, append_images=ims[1:], duration=duration_ms, loop=0)


# ITU-R BT.601 YIQ: Y carries luminance, I and Q the colour. LUMA, Y's weights, is the one copy every module uses.
LUMA = (0.299, 0.587, 0.114)
_RGB2YIQ = np.array([LUMA, [0.595716, -0.274453, -0.321263], [0.211456, -0.522591, 0.311135]],
                    dtype=np.float32)
_YIQ2RGB = np.linalg.inv(_RGB2YIQ).astype(np.float32)


def original_colors(styled, content):
    """Keep the content's colours: luminance (Y) of the styled image with the chrominance (IQ) of the content."""
    if content.shape != styled.shape:
        content = resize_to(content, styled.shape[0], styled.shape[1])
    ys = styled @ _RGB2YIQ.T
    yc = content @ _RGB2YIQ.T
    out = np.concatenate([ys[:, :, :1], yc[:, :, 1:]], axis=2) @ _YIQ2RGB.T
    return np.clip(out, 0, 1).astype(np.float32)
