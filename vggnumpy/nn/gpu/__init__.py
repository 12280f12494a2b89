"""The GPU backend: hand-written CUDA kernels through CuPy; importing this package imports nothing from CuPy."""
