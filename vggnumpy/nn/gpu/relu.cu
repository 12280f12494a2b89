// ReLU for the GPU path: forward writes the output and its one-byte mask (out > 0) in one pass (in place when
// y == x); backward passes the gradient where the mask is set. Same semantics as vggnumpy/kernels/relu.py.
// Compiled by NVRTC through cupy.RawModule and by nvcc in tests/test_nvcc.py: extern "C", no headers.

extern "C" __global__ void relu_fwd(const float* x, float* y, bool* __restrict__ mask, const long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const float v = x[i];
        const float r = v < 0.0f ? 0.0f : v;      // like np.maximum(v, 0): NaN stays NaN
        y[i] = r;
        mask[i] = r > 0.0f;
    }
}

extern "C" __global__ void relu_bwd(const float* __restrict__ dout, const bool* __restrict__ mask,
                                    float* __restrict__ dx, const long long n)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        dx[i] = mask[i] ? dout[i] : 0.0f;
    }
}
