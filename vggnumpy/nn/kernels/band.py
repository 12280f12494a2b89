"""Copy image rows into a band of zero-padded rows: the input block of the stride-1 convolutions."""
import numpy as np


def fill(band, x, first, pad, a, b, in_mask=None):
    """Channels a..b of band (C, R, Wp) become image rows first .. first+R-1 of x (C, H, W), shifted right by pad
    columns; rows outside the image and columns outside [pad, pad+W) are zeros.

    Only the border is zeroed and the image is copied once (each element of the band is written once).
    in_mask (C, H, W), when given, multiplies x as it is copied (the backward of a ReLU that followed).
    """
    h, w = x.shape[1:]
    top, bot = max(first, 0), min(first + band.shape[1], h)          # image rows inside the band
    bd = band[a:b]
    if bot <= top:
        bd[...] = 0
        return
    bd[:, :top - first] = 0
    bd[:, bot - first:] = 0
    bd[:, :, :pad] = 0
    bd[:, :, pad + w:] = 0
    dst = bd[:, top - first:bot - first, pad:pad + w]
    if in_mask is None:
        dst[...] = x[a:b, top:bot]
    else:
        np.multiply(x[a:b, top:bot], in_mask[a:b, top:bot], out=dst)
