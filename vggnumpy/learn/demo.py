"""Pictures drawn from code, so `vggnumpy demo` needs no files: a photo-like landscape and a painting-like texture."""
import numpy as np


def _smooth_noise(rng, h, w, cells):
    """Value noise: a coarse random grid, bilinearly upsampled; (H, W) in [0, 1]."""
    g = rng.random((cells + 1, cells + 1))
    ys, xs = np.linspace(0, cells, h, endpoint=False), np.linspace(0, cells, w, endpoint=False)
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    a, b = g[y0][:, x0], g[y0][:, x0 + 1]
    c, d = g[y0 + 1][:, x0], g[y0 + 1][:, x0 + 1]
    return a * (1 - fy) * (1 - fx) + b * (1 - fy) * fx + c * fy * (1 - fx) + d * fy * fx


def landscape(h=256, w=320, seed=1):
    """A photo-like scene: sky gradient, sun, two ranges of hills, a lake, a house with a roof. (H, W, 3)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w] / np.array([h, w])[:, None, None]
    img = np.zeros((h, w, 3))
    img[:] = np.stack([0.35 + 0.4 * y, 0.55 + 0.3 * y, 0.95 - 0.1 * y], axis=-1)            # sky
    sun = (x - 0.78) ** 2 + ((y - 0.2) * h / w) ** 2 < 0.004
    img[sun] = (1.0, 0.93, 0.6)
    far = 0.45 + 0.08 * np.sin(x * 9 + 1) + 0.05 * _smooth_noise(rng, 1, w, 6)[0]
    img[y > far] = (0.35, 0.45, 0.55)                                                        # far hills
    near = 0.62 + 0.06 * np.sin(x * 5 + 3) + 0.06 * _smooth_noise(rng, 1, w, 8)[0]
    grass = y > near
    tex = _smooth_noise(rng, h, w, 40)[..., None]
    img[grass] = (np.array([0.2, 0.5, 0.18]) * (0.7 + 0.6 * tex))[grass]                     # meadow
    lake = (y > 0.82) & (np.abs(x - 0.3) < 0.25 - (y - 0.82))
    img[lake] = (np.array([0.2, 0.35, 0.6]) * (0.8 + 0.4 * tex))[lake]
    house = (np.abs(x - 0.62) < 0.07) & (y > 0.62) & (y < 0.78)
    img[house] = (0.85, 0.8, 0.7)
    roof = (y <= 0.62) & (y > 0.62 - 0.08 * (1 - np.abs(x - 0.62) / 0.09)) & (np.abs(x - 0.62) < 0.09)
    img[roof] = (0.6, 0.15, 0.1)
    door = (np.abs(x - 0.62) < 0.015) & (y > 0.7) & (y < 0.78)
    img[door] = (0.3, 0.2, 0.1)
    img += 0.02 * rng.standard_normal(img.shape)                                             # sensor noise
    return np.clip(img, 0, 1).astype(np.float32)


def swirls(h=256, w=256, seed=2):
    """A painting-like texture: short brush strokes following a swirling flow field, in blues and yellows."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    angle = 2 * np.pi * _smooth_noise(rng, h, w, 4)
    palette = np.array([[0.1, 0.2, 0.5], [0.2, 0.35, 0.7], [0.95, 0.85, 0.3], [0.9, 0.95, 0.8], [0.05, 0.1, 0.25]])
    img = np.zeros((h, w, 3)) + palette[0]
    for _ in range(900):
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        a = angle[cy, cx] + np.pi / 2
        colour = palette[rng.choice(len(palette), p=[0.3, 0.3, 0.2, 0.1, 0.1])]
        length, width = rng.uniform(6, 16), rng.uniform(1.2, 2.6)
        u = (x - cx) * np.cos(a) + (y - cy) * np.sin(a)
        v = -(x - cx) * np.sin(a) + (y - cy) * np.cos(a)
        mask = (np.abs(u) < length) & (np.abs(v) < width)
        img[mask] = 0.25 * img[mask] + 0.75 * colour
    return np.clip(img, 0, 1).astype(np.float32)
