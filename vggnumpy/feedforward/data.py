"""The training photos: the image files of the folders named, read once, and batches of random square crops of
them at several scales, flipped at random. Batch i depends only on (seed, i), so a resumed run sees the same
crops it would have seen without the interruption."""
import hashlib
import os

import numpy as np

from ..files import images

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SCALES = (0.75, 1.5)              # a crop's photo is seen with its longest side at photo_size times this range


def photo_files(folders):
    """The image files (by extension) directly in each folder, sorted; ImageError naming a folder that is missing
    or holds none."""
    out = []
    for folder in folders:
        if not os.path.isdir(folder):
            raise images.ImageError(f"--photos {folder}: no such folder; give folders of photos to train on")
        found = sorted(os.path.join(folder, f) for f in os.listdir(folder)
                       if f.lower().endswith(EXTENSIONS) and os.path.isfile(os.path.join(folder, f)))
        if not found:
            raise images.ImageError(f"--photos {folder}: the folder holds no images ({', '.join(EXTENSIONS)}); "
                                    f"put photos in it or name another folder")
        out += found
    return out


def load_photos(paths, crop, photo_size):
    """[(name, (H, W, 3) float32)], each photo no larger than needed for its largest scale (longest side
    SCALES[1] * photo_size, or as much as keeps its shorter side at least `crop`); a photo whose shorter side is
    under `crop` is refused, naming it."""
    out = []
    for p in paths:
        arr = images.load_image(p, what="training photo")
        h, w = arr.shape[:2]
        if min(h, w) < crop:
            raise images.ImageError(f"{p}: the training photo is {w}x{h}, smaller than the {crop}x{crop} crops; "
                                    f"lower --size or leave the photo out")
        f = max(SCALES[1] * photo_size / max(h, w), crop / min(h, w))
        if f < 1:
            arr = images.resize_to(arr, max(crop, int(round(h * f))), max(crop, int(round(w * f))))
        out.append((os.path.basename(p), arr))
    return out


def digest(paths):
    """{file name: SHA-256} of the photos: what a model records it was trained on."""
    out = {}
    for p in paths:
        with open(p, "rb") as f:
            out[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()
    return out


def batch(photos, index, size, count, photo_size, seed):
    """Batch `index`: (count, 3, size, size) float32 crops, each from a random photo at a random scale (longest side
    photo_size * SCALES, as far as the photo allows), at a random place, flipped left-right half the time."""
    rng = np.random.default_rng([seed, index])
    out = np.empty((count, 3, size, size), dtype=np.float32)
    for k in range(count):
        _, arr = photos[rng.integers(len(photos))]
        h, w = arr.shape[:2]
        side = photo_size * rng.uniform(*SCALES)
        f = min(side / max(h, w), 1.0)
        f = max(f, size / min(h, w))                     # never smaller than the crop
        nh, nw = max(size, int(round(h * f))), max(size, int(round(w * f)))
        img = arr if (nh, nw) == (h, w) else images.resize_to(arr, nh, nw)
        y, x = rng.integers(nh - size + 1), rng.integers(nw - size + 1)
        crop = img[y:y + size, x:x + size]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[k] = crop.transpose(2, 0, 1)
    return out
