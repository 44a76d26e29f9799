// BatchNorm (training mode, batch statistics) fused with the ReLU / LeakyReLU that follows it, for MindSpore
// ops.Custom (func_type "aot", CPU): one kernel forward and one backward, in place of MindSpore's BatchNorm and
// BatchNormGrad (oneDNN's generic NCHW kernel, `ncsp_bnorm:any`) and the eltwise pair around them.
//
// Why: on the narrow nets (ngf = ndf = 32) BatchNorm and its gradient took ~46 ms of a ~260 ms step, the
// activations ~10 ms more (ONEDNN_VERBOSE, B=128, 32 px, AMD EPYC AVX-512; bench/RESULTS.md): the generic kernel is
// bound by its overhead on small planes. Here each pass is one or two sweeps over the rows of a channels-last (NHWC)
// tensor, the layout G and D keep between the project's kernels (dnnl_conv.cc): every row holds all C channels
// contiguously, so the per-channel sums and the normalisation vectorise across channels; the threads split the rows.
//
//   BatchNormActFwd_aNN(x, gamma, beta) -> (y, mean, var)
//       mean, var: the batch's per-channel mean and biased variance; y = act(gamma * (x - mean) / sqrt(var + eps)
//       + beta), act(z) = z if z > 0 else alpha * z
//   BatchNormActBwd_aNN(x, y, dy, gamma, mean, var) -> (dx, dgamma, dbeta)
//       dz = dy where y > 0, alpha * dy elsewhere (for alpha >= 0, y > 0 iff z > 0); then BatchNorm's gradient with
//       xhat = (x - mean) * rstd: dgamma = sum dz * xhat, dbeta = sum dz,
//       dx = gamma * rstd * (dz - dbeta / M - xhat * dgamma / M), M = N*H*W
// alpha = NN / 100 (a0: ReLU, a20: LeakyReLU(0.2)); eps = 1e-5 (DCGAN's, nn.BatchNorm2d's default); x float32 with
// channels last (any rank >= 2: the leading dimensions form the rows). Sums run in float over blocks of rows, in
// double across blocks; the variance is taken of x minus its first row (shifted data), which keeps it exact when a
// channel's mean is large against its spread. Moving statistics are the caller's (src/cpu/fast_layers.py).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// The row loops are short and simple: let GCC vectorise them, in clones for AVX-512 and AVX2 chosen at load time
// (the library is built without -march, for any x86-64 CPU).
#pragma GCC optimize("O3")
#define DCGAN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DCGAN_CLONES
#endif
#include "dnnl_runtime.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

namespace {
using namespace dcgan_dnnl;

constexpr float kEps = 1e-5f;
constexpr int64_t kBlockRows = 64;  // rows summed in float before the sums go to double

// The row loops read and write distinct arrays; saying so (__restrict__) lets the compiler vectorise them.
using In = const float *__restrict__;
using Out = float *__restrict__;

// s1 += sum over rows of (x - pivot), s2 += sum of (x - pivot)^2, per channel.
DCGAN_CLONES void shifted_sums(In x, int64_t rows, int64_t c, In pivot, Out s1, Out s2) {
    for (int64_t r = 0; r < rows; ++r, x += c)
        for (int64_t j = 0; j < c; ++j) {
            const float d = x[j] - pivot[j];
            s1[j] += d;
            s2[j] += d * d;
        }
}

DCGAN_CLONES void affine_act(In x, Out y, int64_t rows, int64_t c, In scale, In shift, float alpha) {
    for (int64_t r = 0; r < rows; ++r, x += c, y += c)
        for (int64_t j = 0; j < c; ++j) {
            const float z = x[j] * scale[j] + shift[j];
            y[j] = z > 0.f ? z : z * alpha;
        }
}

// dz = dy * (y > 0 ? 1 : alpha) written to dz; s0 += sum dz, s1 += sum dz * (x - mean), per channel.
DCGAN_CLONES void grad_sums(In x, In y, In dy, Out dz, int64_t rows, int64_t c, In mean, float alpha, Out s0,
                            Out s1) {
    for (int64_t r = 0; r < rows; ++r, x += c, y += c, dy += c, dz += c)
        for (int64_t j = 0; j < c; ++j) {
            const float g = y[j] > 0.f ? dy[j] : dy[j] * alpha;
            dz[j] = g;
            s0[j] += g;
            s1[j] += g * (x[j] - mean[j]);
        }
}

// dx = k * (dz - a - (x - mean) * b), in place over dz.
DCGAN_CLONES void grad_input(In x, Out dz, int64_t rows, int64_t c, In mean, In k, In a, In b) {
    for (int64_t r = 0; r < rows; ++r, x += c, dz += c)
        for (int64_t j = 0; j < c; ++j) dz[j] = k[j] * (dz[j] - a[j] - (x[j] - mean[j]) * b[j]);
}

struct Shape {
    int64_t rows = 0, c = 0;
};

bool channels_last(int ndim, const int64_t *shape, Shape &s) {
    if (ndim < 2) return false;
    s.rows = 1, s.c = shape[ndim - 1];
    for (int d = 0; d + 1 < ndim; ++d) s.rows *= shape[d];
    return true;
}

// Runs fn(part, first row, last row) with the rows split into one contiguous range per pool thread; returns the
// number of parts.
template <typename F>
int over_rows(int64_t rows, F fn) {
    ThreadPool &pool = *context().pool;
    const int parts = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(pool.get_num_threads(), rows)));
    pool.parallel_for(parts, [&](int i, int total) { fn(i, rows * i / total, rows * (i + 1) / total); });
    return parts;
}

// Per-channel double sums of two quantities over all rows: each part adds float sums of blocks of rows into its
// own doubles, then the parts are added. block(first, count, f0, f1) adds the float sums of rows [first, +count).
template <typename Block>
void channel_sums(const Shape &s, std::vector<double> &t0, std::vector<double> &t1, Block block) {
    const int threads = context().pool->get_num_threads();
    std::vector<double> partial(static_cast<size_t>(threads) * 2 * s.c, 0.0);
    const int parts = over_rows(s.rows, [&](int part, int64_t first, int64_t last) {
        std::vector<float> f(2 * s.c);
        double *d0 = partial.data() + part * 2 * s.c, *d1 = d0 + s.c;
        for (int64_t r = first; r < last; r += kBlockRows) {
            std::fill(f.begin(), f.end(), 0.f);
            block(r, std::min(kBlockRows, last - r), f.data(), f.data() + s.c);
            for (int64_t j = 0; j < s.c; ++j) d0[j] += f[j], d1[j] += f[s.c + j];
        }
    });
    t0.assign(s.c, 0.0);
    t1.assign(s.c, 0.0);
    for (int p = 0; p < parts; ++p)
        for (int64_t j = 0; j < s.c; ++j) t0[j] += partial[p * 2 * s.c + j], t1[j] += partial[p * 2 * s.c + s.c + j];
}

int forward(float alpha, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
    if (nparam != 6) return 1;
    for (int i = 0; i < nparam; ++i)
        if (std::strcmp(dtypes[i], "float32") != 0) return 2;
    Shape s;
    if (!channels_last(ndims[0], shapes[0], s) || s.rows < 2) return 2;
    const float *x = static_cast<const float *>(params[0]), *gamma = static_cast<const float *>(params[1]),
                *beta = static_cast<const float *>(params[2]);
    float *y = static_cast<float *>(params[3]), *mean = static_cast<float *>(params[4]),
          *var = static_cast<float *>(params[5]);
    const double count = static_cast<double>(s.rows);
    ExecScope scope;
    std::vector<double> sum, squares;
    channel_sums(s, sum, squares, [&](int64_t first, int64_t rows, float *s1, float *s2) {
        shifted_sums(x + first * s.c, rows, s.c, x, s1, s2);
    });
    std::vector<float> scale(s.c), shift(s.c);
    for (int64_t j = 0; j < s.c; ++j) {
        const double shifted_mean = sum[j] / count;
        const float v = static_cast<float>(std::max(0.0, squares[j] / count - shifted_mean * shifted_mean));
        const float m = static_cast<float>(x[j] + shifted_mean);
        scale[j] = gamma[j] / std::sqrt(v + kEps);
        shift[j] = beta[j] - m * scale[j];
        mean[j] = m;
        var[j] = v;
    }
    over_rows(s.rows, [&](int, int64_t first, int64_t last) {
        affine_act(x + first * s.c, y + first * s.c, last - first, s.c, scale.data(), shift.data(), alpha);
    });
    return 0;
}

int backward(float alpha, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
    if (nparam != 9) return 1;
    for (int i = 0; i < nparam; ++i)
        if (std::strcmp(dtypes[i], "float32") != 0) return 2;
    Shape s;
    if (!channels_last(ndims[0], shapes[0], s) || s.rows < 1) return 2;
    const float *x = static_cast<const float *>(params[0]), *y = static_cast<const float *>(params[1]),
                *dy = static_cast<const float *>(params[2]), *gamma = static_cast<const float *>(params[3]),
                *mean = static_cast<const float *>(params[4]), *var = static_cast<const float *>(params[5]);
    float *dx = static_cast<float *>(params[6]), *dgamma = static_cast<float *>(params[7]),
          *dbeta = static_cast<float *>(params[8]);
    const double count = static_cast<double>(s.rows);
    ExecScope scope;
    std::vector<double> sum_dz, sum_dz_xc;
    channel_sums(s, sum_dz, sum_dz_xc, [&](int64_t first, int64_t rows, float *s0, float *s1) {
        const int64_t at = first * s.c;
        grad_sums(x + at, y + at, dy + at, dx + at, rows, s.c, mean, alpha, s0, s1);
    });
    // xhat = (x - m) * rstd: dgamma = rstd * sum dz (x - m); dx = gamma rstd (dz - sum dz / M - xhat dgamma / M)
    std::vector<float> k(s.c), a(s.c), b(s.c);
    for (int64_t j = 0; j < s.c; ++j) {
        const float rstd = 1.f / std::sqrt(var[j] + kEps);
        dgamma[j] = static_cast<float>(sum_dz_xc[j] * rstd);
        dbeta[j] = static_cast<float>(sum_dz[j]);
        k[j] = gamma[j] * rstd;
        a[j] = static_cast<float>(sum_dz[j] / count);
        b[j] = static_cast<float>(sum_dz_xc[j] / count) * rstd * rstd;
    }
    over_rows(s.rows, [&](int, int64_t first, int64_t last) {
        grad_input(x + first * s.c, dx + first * s.c, last - first, s.c, mean, k.data(), a.data(), b.data());
    });
    return 0;
}

}  // namespace

extern "C" {
#define DCGAN_BATCH_NORM_ACT_ENTRY(A)                                                                            \
    int BatchNormActFwd_a##A(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                             void *) {                                                                         \
        return forward(A / 100.f, nparam, params, ndims, shapes, dtypes);                                      \
    }                                                                                                          \
    int BatchNormActBwd_a##A(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                             void *) {                                                                         \
        return backward(A / 100.f, nparam, params, ndims, shapes, dtypes);                                     \
    }
DCGAN_BATCH_NORM_ACT_ENTRY(0)
DCGAN_BATCH_NORM_ACT_ENTRY(20)
}
