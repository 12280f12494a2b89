"""Layer kernels as forward/backward pairs (convolution, ReLU, pooling) beside their loop references; engine.Engine
holds their state (threads, derived weights, a forced convolution way)."""
