"""The network, layer by layer: the VGG and NIN layer tables with their receptive fields (arch), the network's
forward and backward passes (network), its input convention (preprocess), the one array-module switch (backend),
and the kernels: NumPy convolution, pooling and ReLU beside their loop references (kernels/) and the same in CUDA
through CuPy (gpu/). Imports only the standard library, NumPy and files/.
"""
