"""Execute a notebook of this folder at a size, keep its outputs, and record what they came from.

    python docs/notebooks/run.py 03_content_reconstruction.ipynb            # full size: the committed figures
    python docs/notebooks/run.py --all --size small                         # every notebook, as CI runs them

It runs the notebook top to bottom in a fresh kernel (nbclient) with VGGNUMPY_NOTEBOOK_SIZE set, writes it back
with its outputs, stores in its metadata the SHA-256 of its code cells (tests/test_notebooks.py checks that the
committed outputs come from the current code) with the size and the seconds it took, and saves the last image
it shows as thumbs/NAME.png, the picture docs/notebooks/README.md shows for it.
"""
import argparse
import base64
import glob
import hashlib
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
THUMB_SIDE = 320


def code_hash(nb):
    """SHA-256 of the notebook's code cells' sources, in order (outputs and markdown left out)."""
    h = hashlib.sha256()
    for cell in nb.cells:
        if cell.cell_type == "code":
            h.update(cell.source.encode("utf-8") + b"\0")
    return h.hexdigest()


def last_image(nb):
    """The bytes of the last PNG the notebook displays, or None."""
    found = None
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if "image/png" in data:
                found = base64.b64decode(data["image/png"])
    return found


def thumbnail(png, path):
    import io
    from PIL import Image
    with Image.open(io.BytesIO(png)) as im:
        im = im.convert("RGB")
        im.thumbnail((THUMB_SIDE, THUMB_SIDE), Image.LANCZOS)
        im.save(path)


def run(path, size, timeout):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(path, as_version=4)
    os.environ["VGGNUMPY_NOTEBOOK_SIZE"] = size
    t = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": HERE}}).execute()
    seconds = time.perf_counter() - t
    nb.metadata["vggnumpy"] = dict(code_sha256=code_hash(nb), size=size, seconds=round(seconds, 1))
    nbformat.write(nb, path)
    png = last_image(nb)
    if png is not None and size == "full":
        thumbnail(png, os.path.join(HERE, "thumbs", os.path.splitext(os.path.basename(path))[0] + ".png"))
    return seconds


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("notebooks", nargs="*")
    p.add_argument("--all", action="store_true")
    p.add_argument("--size", default="full", choices=("full", "small"))
    p.add_argument("--timeout", type=int, default=7200, help="seconds one cell may take")
    a = p.parse_args()
    names = sorted(glob.glob(os.path.join(HERE, "[0-9]*.ipynb"))) if a.all else [
        n if os.path.isabs(n) or os.path.exists(n) else os.path.join(HERE, n) for n in a.notebooks]
    if not names:
        sys.exit("give notebooks, or --all")
    for n in names:
        s = run(n, a.size, a.timeout)
        print(f"{os.path.basename(n)}: {s:.0f} s at size {a.size}", flush=True)


if __name__ == "__main__":
    main()
