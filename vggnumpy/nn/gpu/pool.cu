// Max and average pooling forward and backward for the GPU path, NCHW, square window k, any stride and
// padding, ceil mode by the output size the caller passes. Same rules as vggnumpy/kernels/pool.py:
// padding counts as -inf for max and 0 for average; max ties go to the first maximum in row-major window
// order, whose tap index (di*k + dj) is kept as one byte per output; the average divides by the window size
// clipped to the padded input [-pad, size + pad). Backward is a gather (one thread per input), no atomics.
// Compiled by NVRTC through cupy.RawModule and by nvcc in tests/test_nvcc.py: extern "C", no headers.

__device__ __forceinline__ long long split_nchw(const long long idx, const int rows, const int cols, int* r, int* c)
{
    // Flat index of an (N*C, rows, cols) array -> its row r, column c, and plane n*C + ch (returned).
    *c = (int)(idx % cols);
    const long long t = idx / cols;
    *r = (int)(t % rows);
    return t / rows;
}

extern "C" __global__ void maxpool_fwd(const float* __restrict__ x, float* __restrict__ out,
                                       unsigned char* __restrict__ arg, const long long n,
                                       const int H, const int W, const int Ho, const int Wo,
                                       const int k, const int stride, const int pad)
{
    const float neg_inf = __int_as_float(0xff800000);
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        int i, j;
        const long long nc = split_nchw(idx, Ho, Wo, &i, &j);
        const float* xc = x + nc * H * W;
        const int h0 = i * stride - pad;
        const int w0 = j * stride - pad;
        float best = neg_inf;
        int a = 0;
        for (int di = 0; di < k; ++di) {
            const int h = h0 + di;
            const bool hin = h >= 0 && h < H;
            for (int dj = 0; dj < k; ++dj) {
                const int w = w0 + dj;
                const float v = (hin && w >= 0 && w < W) ? xc[(long long)h * W + w] : neg_inf;
                if (v > best) {          // strict: ties keep the first maximum
                    best = v;
                    a = di * k + dj;
                }
            }
        }
        out[idx] = best;
        arg[idx] = (unsigned char)a;
    }
}

__device__ __forceinline__ void covering_windows(const int p, const int k, const int stride, const int n_out,
                                                 int* first, int* end)
{
    // Along one axis: the windows i in [first, end) whose span [i*stride, i*stride + k) holds padded position p.
    *first = p < k ? 0 : (p - k) / stride + 1;
    const int e = p / stride + 1;
    *end = e > n_out ? n_out : e;
}

extern "C" __global__ void maxpool_bwd(const float* __restrict__ dout, const unsigned char* __restrict__ arg,
                                       float* __restrict__ dx, const long long n,
                                       const int H, const int W, const int Ho, const int Wo,
                                       const int k, const int stride, const int pad)
{
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        int h, w;
        const long long nc = split_nchw(idx, H, W, &h, &w);
        const int hp = h + pad;
        const int wp = w + pad;
        int is, ie, js, je;
        covering_windows(hp, k, stride, Ho, &is, &ie);
        covering_windows(wp, k, stride, Wo, &js, &je);
        const long long base = nc * Ho * Wo;
        float sum = 0.0f;
        for (int i = is; i < ie; ++i) {
            const int di = hp - i * stride;
            for (int j = js; j < je; ++j) {
                const long long o = base + (long long)i * Wo + j;
                if ((int)arg[o] == di * k + (wp - j * stride)) sum += dout[o];
            }
        }
        dx[idx] = sum;
    }
}

__device__ __forceinline__ float window_count(const int i, const int j, const int H, const int W,
                                              const int k, const int stride, const int pad)
{
    // Window size clipped to the padded input (count_include_pad=True).
    const int h0 = i * stride - pad;
    const int w0 = j * stride - pad;
    const int h1 = (h0 + k < H + pad) ? h0 + k : H + pad;
    const int w1 = (w0 + k < W + pad) ? w0 + k : W + pad;
    return (float)((h1 - h0) * (w1 - w0));
}

extern "C" __global__ void avgpool_fwd(const float* __restrict__ x, float* __restrict__ out,
                                       const long long n, const int H, const int W, const int Ho,
                                       const int Wo, const int k, const int stride, const int pad)
{
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        int i, j;
        const long long nc = split_nchw(idx, Ho, Wo, &i, &j);
        const float* xc = x + nc * H * W;
        const int h0 = i * stride - pad;
        const int w0 = j * stride - pad;
        float total = 0.0f;
        for (int di = 0; di < k; ++di) {
            const int h = h0 + di;
            if (h < 0 || h >= H) continue;
            for (int dj = 0; dj < k; ++dj) {
                const int w = w0 + dj;
                if (w >= 0 && w < W) total += xc[(long long)h * W + w];
            }
        }
        out[idx] = total / window_count(i, j, H, W, k, stride, pad);
    }
}

extern "C" __global__ void avgpool_bwd(const float* __restrict__ dout, float* __restrict__ dx,
                                       const long long n, const int H, const int W, const int Ho,
                                       const int Wo, const int k, const int stride, const int pad)
{
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        int h, w;
        const long long nc = split_nchw(idx, H, W, &h, &w);
        const int hp = h + pad;
        const int wp = w + pad;
        int is, ie, js, je;
        covering_windows(hp, k, stride, Ho, &is, &ie);
        covering_windows(wp, k, stride, Wo, &js, &je);
        const long long base = nc * Ho * Wo;
        float sum = 0.0f;
        for (int i = is; i < ie; ++i)
            for (int j = js; j < je; ++j)
                sum += dout[base + (long long)i * Wo + j] / window_count(i, j, H, W, k, stride, pad);
        dx[idx] = sum;
    }
}
