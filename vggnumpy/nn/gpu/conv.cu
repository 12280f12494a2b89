// Convolution pieces for the GPU path: im2col and col2im over a band of output rows, and the bias add.
// One image (C, H, W) at a time; the column matrix (C*KH*KW, nrows*Wo) has row k = (c*KH + i)*KW + j, the
// order of w.reshape(O, C*KH*KW), so that out = W @ cols is one cuBLAS GEMM. Only bands of output rows are
// unrolled at once, so no column matrix of a whole large layer ever exists.
// Compiled by NVRTC through cupy.RawModule and by nvcc in tests/test_nvcc.py: extern "C", no headers.

extern "C" __global__ void im2col_rows(const float* __restrict__ x, float* __restrict__ cols,
                                       const int C, const int H, const int W, const int KH, const int KW,
                                       const int stride, const int pad, const int Wo, const int r0,
                                       const int nrows)
{
    // One thread per (c, output row r, output column q) of the band; it writes that column's KH*KW taps.
    const long long ncols = (long long)nrows * Wo;
    const long long n = (long long)C * ncols;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int q = (int)(idx % Wo);
        const long long t = idx / Wo;
        const int r = (int)(t % nrows);
        const int c = (int)(t / nrows);
        const int h0 = (r0 + r) * stride - pad;
        const int w0 = q * stride - pad;
        const float* xc = x + (long long)c * H * W;
        float* col = cols + (long long)c * KH * KW * ncols + (long long)r * Wo + q;
        for (int i = 0; i < KH; ++i) {
            const int h = h0 + i;
            const bool hin = h >= 0 && h < H;
            for (int j = 0; j < KW; ++j) {
                const int w = w0 + j;
                *col = (hin && w >= 0 && w < W) ? xc[(long long)h * W + w] : 0.0f;
                col += ncols;
            }
        }
    }
}

extern "C" __global__ void col2im_rows(const float* __restrict__ dcols, float* __restrict__ dx,
                                       const int C, const int H, const int W, const int KH, const int KW,
                                       const int stride, const int pad, const int Wo, const int r0,
                                       const int nrows, const int h_lo, const int h_hi, const int accumulate)
{
    // Gather form of col2im: one thread per input pixel (c, h, w) with h in [h_lo, h_hi) sums every column
    // entry of the band that came from it, so no atomics are needed and the sum is deterministic.
    const int nh = h_hi - h_lo;
    const long long ncols = (long long)nrows * Wo;
    const long long n = (long long)C * nh * W;
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(idx % W);
        const long long t = idx / W;
        const int h = h_lo + (int)(t % nh);
        const int c = (int)(t / nh);
        const int hp = h + pad;
        const int wp = w + pad;
        // Output rows r with r*stride <= hp <= r*stride + KH - 1, clipped to the band; likewise columns.
        int rs = hp < KH ? 0 : (hp - KH) / stride + 1;
        int re = hp / stride + 1;
        if (rs < r0) rs = r0;
        if (re > r0 + nrows) re = r0 + nrows;
        const int qs = wp < KW ? 0 : (wp - KW) / stride + 1;
        int qe = wp / stride + 1;
        if (qe > Wo) qe = Wo;
        float sum = 0.0f;
        for (int r = rs; r < re; ++r) {
            const int i = hp - r * stride;
            for (int q = qs; q < qe; ++q) {
                const int j = wp - q * stride;
                sum += dcols[((long long)(c * KH + i) * KW + j) * ncols + (long long)(r - r0) * Wo + q];
            }
        }
        float* d = dx + ((long long)c * H + h) * W + w;
        *d = accumulate ? *d + sum : sum;
    }
}

extern "C" __global__ void add_bias(float* __restrict__ out, const float* __restrict__ b, const int O,
                                    const long long hw, const long long n)
{
    // out (N, O, Ho, Wo) += b[o], in place.
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        out[idx] += b[(int)((idx / hw) % O)];
    }
}

extern "C" __global__ void add_bias_relu(float* __restrict__ out, const float* __restrict__ b,
                                         bool* __restrict__ mask, const int O, const long long hw,
                                         const long long n)
{
    // Fused bias + ReLU + mask, in place: out = max(out + b[o], 0), mask = out > 0. One pass instead of two.
    for (long long idx = blockIdx.x * (long long)blockDim.x + threadIdx.x; idx < n;
         idx += (long long)blockDim.x * gridDim.x) {
        const float v = out[idx] + b[(int)((idx / hw) % O)];
        const float r = v < 0.0f ? 0.0f : v;
        out[idx] = r;
        mask[idx] = r > 0.0f;
    }
}
