"""Write the photos the shipped style networks train on into a folder (outside the repository), and say which
photos are held out for judging.

    python benchmarks/training_photos.py DIR

Training photos, none of them judged on, all allowed by the issue (../shared/images/content/ and photos that come
with our dependencies):
- ../shared/images/content/: brad_pitt.jpg and hoovertowernight.jpg (tubingen.jpg and golden_gate.jpg are HELD
  OUT: benchmarks/quality.py judges the networks on them);
- scikit-image's bundled photos (`pip install -e ".[bench]"` brings it), with the terms its docstrings state:
  astronaut (NASA, public domain), chelsea (CC0, Stefan van der Walt), coffee (CC0, Rachel Michetti), rocket
  (SpaceX, public domain), and stereo_motorcycle's left view (the Middlebury 2014 stereo benchmark, Scharstein et
  al.; scikit-image ships it without stating a licence).
"""
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images", "content")
SHARED_PHOTOS = ("brad_pitt.jpg", "hoovertowernight.jpg")
HELD_OUT = ("tubingen.jpg", "golden_gate.jpg")
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "stereo_motorcycle")


def write(folder):
    import skimage.data
    os.makedirs(folder, exist_ok=True)
    for name in SHARED_PHOTOS:
        with open(os.path.join(SHARED, name), "rb") as src, open(os.path.join(folder, name), "wb") as dst:
            dst.write(src.read())
    for name in SKIMAGE_PHOTOS:
        arr = getattr(skimage.data, name)()
        arr = np.asarray(arr[0] if isinstance(arr, tuple) else arr)      # stereo_motorcycle: (left, right, disp)
        Image.fromarray(arr[..., :3]).save(os.path.join(folder, f"skimage_{name}.png"))
    return sorted(os.listdir(folder))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    names = write(sys.argv[1])
    print(f"wrote {len(names)} photos to {sys.argv[1]}: {', '.join(names)}; held out: {', '.join(HELD_OUT)}")
