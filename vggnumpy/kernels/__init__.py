"""Layer kernels as forward/backward pairs: convolution, ReLU and pooling, each beside its loop reference."""
