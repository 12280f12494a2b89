"""`vggnumpy fast` and vggnumpy.fast(): photos painted by a style network (a shipped one by name, or a file made by
`vggnumpy train`), any size, several per call, on the CPU or the GPU, with the content's colours if asked."""
import os

import numpy as np

from ..files import images
from ..files.paths import InputError, check_input, check_outputs
from ..nn import backend as backends, transformer
from ..style import color
from . import apply, model as modelfile

COLOR_TRANSFER = ("luminance", "histogram", "histogram:chol", "histogram:pca", "histogram:sym")
BYTES_PER_PIXEL = 4 * 4       # float32, about four live activations of one channel per pixel and channel (memory)


def load_network(name_or_path, device="cpu", log=None):
    """(transformer.Transformer on the device, its Model) for a shipped model's name or a model file."""
    m = modelfile.load(modelfile.resolve(name_or_path))
    backend = backends.select(device, log=log)
    params = {k: backend.asarray(v) for k, v in m.params.items()}
    return transformer.Transformer(params, kernels=backend.kernels), m


def colours(styled, content, original_colors=False, color_transfer=None):
    """The painted image with the photo's colours kept, as asked: luminance (--original-colors, or
    --color-transfer luminance): its luminance with the photo's chroma; histogram[:mode]: recoloured to the photo's
    colour mean and covariance (Gatys et al. 2017's two ways, applied after the network)."""
    if original_colors or color_transfer == "luminance":
        return images.original_colors(styled, content)
    if color_transfer:
        mode = color_transfer.split(":")[1] if ":" in color_transfer else "pca"
        return np.clip(color.match_histogram(styled, content, mode), 0, 1).astype(np.float32)
    return styled


def auto_tile(net, shape, available):
    """The tile core (pixels) for an image of `shape` (H, W) when it would take over half the memory available,
    else None (whole)."""
    if available is None:
        return None
    per_pixel = BYTES_PER_PIXEL * net.units[0].cout
    if shape[0] * shape[1] * per_pixel <= available // 2:
        return None
    side = int((available // 2 // per_pixel) ** 0.5) - 2 * apply.HALO
    return max(256, side // transformer.MULTIPLE * transformer.MULTIPLE)


def output_names(inputs, output):
    """The output file of each input: `output` itself for one input; for several, output is a folder and each
    is FOLDER/STEM.png."""
    if len(inputs) == 1 and not os.path.isdir(output):
        return [output]
    if not os.path.isdir(output):
        raise images.ImageError(f"-o {output}: with {len(inputs)} images, -o names a folder for their outputs; "
                                f"create it first")
    names = [os.path.join(output, os.path.splitext(os.path.basename(str(p)))[0] + ".png") for p in inputs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise images.ImageError(f"-o {output}: two inputs would both be written to {sorted(dup)[0]}; rename one")
    return names


def check(inputs, outputs):
    """Refuse before any work: an input that is not a readable file, an output that cannot be written or would
    overwrite an input."""
    for p in inputs:
        try:
            check_input("image", p)
        except InputError as e:
            raise images.ImageError(str(e)) from None
    for o in outputs:
        images.check_output_path(o)
    check_outputs([("output", o) for o in outputs], [("image", p) for p in inputs])


def fast(model, inputs, output=None, *, size=None, device="cpu", original_colors=False, color_transfer=None,
         tile=None, log=None):
    """Paint each of `inputs` (file names or (H, W, 3) arrays in [0, 1]) with style network `model` (a shipped
    model's name, a model file, or a loaded (Transformer, Model) pair); returns the painted (H, W, 3) float32
    arrays. size: the longest side (None: each photo's own); tile: core size for exact tiling (None: only when
    the image would take over half the memory free; 0: never). With `output`, files are written as
    `vggnumpy fast` writes them (one input: that file; several: FOLDER/STEM.png)."""
    inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
    if color_transfer is not None and color_transfer not in COLOR_TRANSFER:
        raise ValueError(f"--color-transfer {color_transfer!r}: choose one of {', '.join(COLOR_TRANSFER)}")
    names = None
    if output is not None:
        names = output_names(inputs, output)
        check([p for p in inputs if isinstance(p, (str, os.PathLike))], names)
    net, m = model if isinstance(model, tuple) else load_network(model, device, log)
    out = []
    for k, src in enumerate(inputs):
        img = images.load_image(src, size, 8) if isinstance(src, (str, os.PathLike)) else _array(src, size)
        t = auto_tile(net, img.shape[:2], net_available(net)) if tile is None else (tile or None)
        styled = colours(apply.stylize_array(net, img, t), img, original_colors, color_transfer)
        if names is not None:
            images.save_image(names[k], styled, dict(software="vggnumpy", model=m.info.get("style", ""),
                                                     network=f"transformer width {m.width:g}"))
        out.append(styled)
    return out


def net_available(net):
    """Bytes free where the network computes."""
    xp = backends.xp_of(net.params["conv1.w"])
    return (backends.cpu() if xp is np else backends.gpu(xp)).available()


def _array(a, size):
    a = np.asarray(a, dtype=np.float32)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"an image array must be (H, W, 3) RGB in [0, 1], not {a.shape}")
    return images.resize(a, size) if size else a
