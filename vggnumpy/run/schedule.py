"""The schedule of a run as plain data: the pyramid's levels, their sizes, iterations and how each starts.

-n/--iterations is the budget over all scales. It is split in shares: every coarser scale gets --coarse-share
shares, the full size one (an iteration there costs 3-4x one a scale below). At the untrained network's share of
5, 180 over two scales is 150 + 30 and 110 over three is 50 + 50 + 10; at the pretrained one's 0.7, 48 over two
is 20 + 28. --scale-iterations gives the iterations of each scale instead.
"""
import math
from dataclasses import dataclass

COARSE_SHARES = 5


@dataclass(frozen=True)
class Level:
    """One level (a "scale") of the pyramid: the output's longest side, its iterations, and where it starts from."""
    side: int
    iterations: int
    start: str            # "content", "palette", "noise" or "image" at the first scale; "upsampled" after it


def split(total, n, share=COARSE_SHARES):
    """`total` iterations over n scales: `share` each for the coarser ones, 1 for the full size.

    The full size's share is rounded, and is at least 1 when there is any budget at all; the rest is split
    evenly over the coarser scales, the remainder going to the coarsest first.
    """
    shares = share * (n - 1) + 1
    last = min(total, max(1 if total else 0, math.floor(total / shares + 0.5)))       # total / shares, rounded
    counts = [(total - last) // (n - 1)] * (n - 1) if n > 1 else []
    for i in range(total - last - sum(counts)):
        counts[i] += 1
    return counts + [last]


def sides(size, scales, shape, min_side):
    """The longest side at each scale, coarsest first: size / 2^k, dropping those too small for the network.

    shape (H, W) of the content at the full size; a scale is kept when its shorter side is >= min_side.
    """
    h, w = shape
    out = [max(min_side, round(size / 2 ** (scales - 1 - k))) for k in range(scales)]
    return [s for s in out if min(h, w) * s / max(h, w) >= min_side] or [size]


def levels(size, scales, iterations, scale_iterations, init, shape, min_side, share=COARSE_SHARES):
    """The Levels of one run, coarsest first. scale_iterations (a list, coarsest first) wins over the split of
    iterations (`share` per coarser scale, 1 for the full size)."""
    if scale_iterations is not None:
        scales = len(scale_iterations)
    found = sides(size, scales, shape, min_side)
    if scale_iterations is not None:
        counts = list(scale_iterations)[len(scale_iterations) - len(found):]    # too-small scales drop first
    else:
        counts = split(iterations, len(found), share)
    return [Level(s, n, init if k == 0 else "upsampled") for k, (s, n) in enumerate(zip(found, counts))]


def describe(levels):
    """One line for the log: '256 px x 150, 512 px x 30'."""
    return ", ".join(f"{level.side} px x {level.iterations}" for level in levels)
