"""Spatial control, measured: two styles in two regions of a portrait, each region scored against both styles.

    python benchmarks/regions.py --out DIR                  # brad_pitt.jpg: starry night behind, picasso on him
    python benchmarks/regions.py --out DIR --photo P.jpg --mask M.png --styles A.jpg B.jpg

The person's mask is drawn by flood-filling the photo's light, grey background from the image border (a portrait
on a studio backdrop), or given with --mask (white = the person). The run is `vggnumpy style PHOTO BG PERSON
--mask background.png --mask person.png` at the defaults (-s, --mask-rule and more pass through). Each region
is scored on the largest square wholly inside it (benchmarks/quality.py's style match of that crop against each
style, relative to the same crop of the photo): inside a region, its own style should match better.
"""
import argparse
import os
import subprocess
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "images")
sys.path.insert(0, HERE)


def backdrop_mask(rgb, light=0.72, grey=0.10):
    """(H, W, 3) in [0, 1] -> (H, W) bool, True on the subject: the light, unsaturated pixels connected to the
    border are the backdrop; the rest, its holes filled, is the subject (its largest piece)."""
    from scipy import ndimage
    bg = (rgb.min(2) > light) & (np.ptp(rgb, axis=2) < grey)
    lab, _ = ndimage.label(bg)
    edge = set(np.unique(np.r_[lab[0], lab[-1], lab[:, 0], lab[:, -1]])) - {0}
    bg = ndimage.binary_opening(np.isin(lab, sorted(edge)), iterations=3)
    subject = ndimage.binary_fill_holes(ndimage.binary_closing(~bg, iterations=6))
    lab, n = ndimage.label(subject)
    sizes = ndimage.sum(subject, lab, range(1, n + 1))
    return lab == 1 + int(np.argmax(sizes))


def largest_square(mask):
    """(y, x, side) of the largest square of True pixels (dynamic programming over bottom-right corners)."""
    h, w = mask.shape
    d = np.zeros((h + 1, w + 1), dtype=np.int32)
    for y in range(h):
        row, up = d[y + 1], d[y]
        m = mask[y]
        for x in range(w):
            if m[x]:
                row[x + 1] = 1 + min(up[x], up[x + 1], row[x])
    y, x = np.unravel_index(int(np.argmax(d)), d.shape)
    s = int(d[y, x])
    return y - s, x - s, s


def crop(img, box):
    y, x, s = box
    return img.crop((x, y, x + s, y + s))


def region_scores(judge, out, photo, styles, regions):
    """{region name: {style name: style match of the region's square crop}}: 1 - d(out, style) / d(photo, style)
    on the Ghiasi embedding, crops resized to the judge's 256 px."""
    e_s = {name: judge.embedding(Image.open(path)) for name, path in styles.items()}
    table = {}
    for rname, box in regions.items():
        e_o, e_c = judge.embedding(crop(out, box)), judge.embedding(crop(photo, box))
        table[rname] = {n: 1 - np.linalg.norm(e_o - e) / np.linalg.norm(e_c - e) for n, e in e_s.items()}
    return table


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the masks, the output and the table")
    p.add_argument("--photo", default=os.path.join(SHARED, "content", "brad_pitt.jpg"))
    p.add_argument("--mask", help="the subject's mask (white = subject); default: drawn from the backdrop")
    p.add_argument("--styles", nargs=2, metavar=("BACKGROUND", "SUBJECT"),
                   default=[os.path.join(SHARED, "style", "starry_night.jpg"),
                            os.path.join(SHARED, "style", "picasso_selfport1907.jpg")])
    p.add_argument("--score-only", action="store_true", help="score DIR/out.png as it is")
    args, extra = p.parse_known_args(argv)
    from quality import Judge
    os.makedirs(args.out, exist_ok=True)
    photo = Image.open(args.photo).convert("RGB")
    if args.mask:
        subject = np.asarray(Image.open(args.mask).convert("L").resize(photo.size), dtype=np.float32) > 127
    else:
        subject = backdrop_mask(np.asarray(photo, dtype=np.float32) / 255.0)
    paths = [os.path.join(args.out, n) for n in ("background.png", "subject.png", "out.png")]
    Image.fromarray(np.where(subject, 0, 255).astype(np.uint8)).save(paths[0])
    Image.fromarray(np.where(subject, 255, 0).astype(np.uint8)).save(paths[1])
    if not args.score_only:
        cmd = ["vggnumpy", "style", args.photo, *args.styles, "--mask", paths[0], "--mask", paths[1],
               "-o", paths[2], "--no-progress", *extra]
        print(" ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    out = Image.open(paths[2]).convert("RGB")
    small = lambda m: np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(out.size, Image.NEAREST)) > 127
    regions = {"background": largest_square(~small(subject)), "subject": largest_square(small(subject))}
    table = region_scores(Judge(), out, photo.resize(out.size, Image.LANCZOS),
                          {"background style": args.styles[0], "subject style": args.styles[1]}, regions)
    print(f"\n| region (largest square inside it, at {out.size[0]}x{out.size[1]}) | match to the background "
          f"style | match to the subject style |\n|---|---|---|")
    for rname, row in table.items():
        y, x, s = regions[rname]
        print(f"| {rname} ({s} px at {x},{y}) | {row['background style']:.3f} | {row['subject style']:.3f} |")
    return table


if __name__ == "__main__":
    main()
