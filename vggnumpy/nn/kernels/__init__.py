"""Layer kernels as forward/backward pairs (convolution, ReLU, pooling; for the feed-forward network: reflection
padding, instance normalisation, nearest upsampling) beside their loop references; engine.Engine
holds their state (threads, derived weights, a forced convolution way). output_size is the one rule for the
output size of a window, shared by conv and pool here, the GPU kernels and the layer tables (arch)."""


def output_size(size, k, stride, pad, ceil):
    """Spatial output size of a conv or pool window; ceil mode keeps a last, partial window."""
    span = size + 2 * pad - k
    if span < 0:
        return 0
    if ceil:
        out = -(-span // stride) + 1
        # A window that starts entirely in the right padding is dropped (as Caffe and PyTorch do).
        if (out - 1) * stride >= size + pad:
            out -= 1
        return out
    return span // stride + 1
