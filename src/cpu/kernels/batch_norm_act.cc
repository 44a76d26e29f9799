// BatchNorm (training mode, batch statistics) fused with the ReLU / LeakyReLU that follows it, for MindSpore
// ops.Custom (func_type "aot", CPU): one kernel forward and one backward, in place of MindSpore's BatchNorm and
// BatchNormGrad (oneDNN's generic NCHW kernel, `ncsp_bnorm:any`) and the eltwise pair around them.
//
// Why: on the narrow nets (ngf = ndf = 32) BatchNorm and its gradient took ~46 ms of a ~260 ms step, the
// activations ~10 ms more (ONEDNN_VERBOSE, B=128, 32 px, AMD EPYC AVX-512; bench/RESULTS.md). The channel planes are
// small (4x4 .. 16x16) and the generic kernel is bound by its overhead. Here each thread takes whole channels; one
// channel's N*H*W values (<= 128 KB at B=128) stay in cache across the passes (mean, variance, normalise and
// activate), so the data is read from memory once and written once per pass.
//
//   BatchNormActFwd_aNN(x, gamma, beta) -> (y, mean, var)
//       mean, var: the batch's per-channel mean and biased variance; y = act(gamma * (x - mean) / sqrt(var + eps)
//       + beta), act(z) = z if z > 0 else alpha * z
//   BatchNormActBwd_aNN(x, y, dy, gamma, mean, var) -> (dx, dgamma, dbeta)
//       dz = dy where y > 0, alpha * dy elsewhere (for alpha >= 0, y > 0 iff z > 0); then BatchNorm's gradient with
//       xhat = (x - mean) * rstd: dgamma = sum dz * xhat, dbeta = sum dz,
//       dx = gamma * rstd * (dz - dbeta / M - xhat * dgamma / M), M = N*H*W
// alpha = NN / 100 (a0: ReLU, a20: LeakyReLU(0.2)); eps = 1e-5 (DCGAN's, nn.BatchNorm2d's default); x NCHW float32
// (any rank >= 2: the trailing dimensions form the plane). Sums run in float lanes within a plane, in double across
// planes. Moving statistics are the caller's (src/cpu/fast_layers.py DnnlBatchNormAct).
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
// The plane loops are short and simple: let GCC vectorise them, in clones for AVX-512 and AVX2 chosen at load time
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

namespace {
using namespace dcgan_dnnl;

constexpr float kEps = 1e-5f;
constexpr int kLanes = 16;

DCGAN_CLONES float plane_sum(const float *p, int64_t n) {
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) lane[j] += p[i + j];
    float s = 0.f;
    for (; i < n; ++i) s += p[i];
    for (int j = 0; j < kLanes; ++j) s += lane[j];
    return s;
}

DCGAN_CLONES float plane_centred_squares(const float *p, int64_t n, float m) {
    float lane[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
            const float d = p[i + j] - m;
            lane[j] += d * d;
        }
    float s = 0.f;
    for (; i < n; ++i) s += (p[i] - m) * (p[i] - m);
    for (int j = 0; j < kLanes; ++j) s += lane[j];
    return s;
}

DCGAN_CLONES void plane_affine_act(const float *p, float *q, int64_t n, float scale, float shift, float alpha) {
    for (int64_t i = 0; i < n; ++i) {
        const float z = p[i] * scale + shift;
        q[i] = z > 0.f ? z : z * alpha;
    }
}

// dz = dy * (y > 0 ? 1 : alpha) written to dz; returns sum dz and sum dz * (x - m) in out[0], out[1].
DCGAN_CLONES void plane_grad_sums(const float *x, const float *y, const float *dy, float *dz, int64_t n, float m,
                                  float alpha, float *out) {
    float l0[kLanes] = {}, l1[kLanes] = {};
    int64_t i = 0;
    for (; i + kLanes <= n; i += kLanes)
        for (int j = 0; j < kLanes; ++j) {
            const float g = y[i + j] > 0.f ? dy[i + j] : dy[i + j] * alpha;
            dz[i + j] = g;
            l0[j] += g;
            l1[j] += g * (x[i + j] - m);
        }
    float s0 = 0.f, s1 = 0.f;
    for (; i < n; ++i) {
        const float g = y[i] > 0.f ? dy[i] : dy[i] * alpha;
        dz[i] = g;
        s0 += g;
        s1 += g * (x[i] - m);
    }
    for (int j = 0; j < kLanes; ++j) s0 += l0[j], s1 += l1[j];
    out[0] = s0;
    out[1] = s1;
}

// dx = k * (dz - a - (x - m) * b), in place over dz.
DCGAN_CLONES void plane_grad_input(const float *x, float *dz, int64_t n, float m, float k, float a, float b) {
    for (int64_t i = 0; i < n; ++i) dz[i] = k * (dz[i] - a - (x[i] - m) * b);
}

struct Shape {
    int64_t n = 0, c = 0, hw = 0;
};

bool nchw(int ndim, const int64_t *shape, Shape &s) {
    if (ndim < 2) return false;
    s.n = shape[0], s.c = shape[1], s.hw = 1;
    for (int d = 2; d < ndim; ++d) s.hw *= shape[d];
    return true;
}

template <typename F>
void over_channels(int64_t channels, F fn) {
    ThreadPool &pool = *context().pool;
    const int parts = static_cast<int>(std::min<int64_t>(pool.get_num_threads(), channels));
    pool.parallel_for(parts, [&](int i, int total) {
        for (int64_t c = channels * i / total; c < channels * (i + 1) / total; ++c) fn(c);
    });
}

int forward(float alpha, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
    if (nparam != 6) return 1;
    for (int i = 0; i < nparam; ++i)
        if (std::strcmp(dtypes[i], "float32") != 0) return 2;
    Shape s;
    if (!nchw(ndims[0], shapes[0], s) || s.n * s.hw < 2) return 2;
    const float *x = static_cast<const float *>(params[0]), *gamma = static_cast<const float *>(params[1]),
                *beta = static_cast<const float *>(params[2]);
    float *y = static_cast<float *>(params[3]), *mean = static_cast<float *>(params[4]),
          *var = static_cast<float *>(params[5]);
    const double count = static_cast<double>(s.n * s.hw);
    ExecScope scope;
    over_channels(s.c, [&](int64_t c) {
        double sum = 0.0;
        for (int64_t b = 0; b < s.n; ++b) sum += plane_sum(x + (b * s.c + c) * s.hw, s.hw);
        const float m = static_cast<float>(sum / count);
        double squares = 0.0;
        for (int64_t b = 0; b < s.n; ++b) squares += plane_centred_squares(x + (b * s.c + c) * s.hw, s.hw, m);
        const float v = static_cast<float>(squares / count);
        const float scale = gamma[c] / std::sqrt(v + kEps), shift = beta[c] - m * scale;
        for (int64_t b = 0; b < s.n; ++b) {
            const int64_t at = (b * s.c + c) * s.hw;
            plane_affine_act(x + at, y + at, s.hw, scale, shift, alpha);
        }
        mean[c] = m;
        var[c] = v;
    });
    return 0;
}

int backward(float alpha, int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes) {
    if (nparam != 9) return 1;
    for (int i = 0; i < nparam; ++i)
        if (std::strcmp(dtypes[i], "float32") != 0) return 2;
    Shape s;
    if (!nchw(ndims[0], shapes[0], s) || s.n * s.hw < 1) return 2;
    const float *x = static_cast<const float *>(params[0]), *y = static_cast<const float *>(params[1]),
                *dy = static_cast<const float *>(params[2]), *gamma = static_cast<const float *>(params[3]),
                *mean = static_cast<const float *>(params[4]), *var = static_cast<const float *>(params[5]);
    float *dx = static_cast<float *>(params[6]), *dgamma = static_cast<float *>(params[7]),
          *dbeta = static_cast<float *>(params[8]);
    const double count = static_cast<double>(s.n * s.hw);
    ExecScope scope;
    over_channels(s.c, [&](int64_t c) {
        const float m = mean[c], rstd = 1.f / std::sqrt(var[c] + kEps);
        double sum_dz = 0.0, sum_dz_xc = 0.0;
        for (int64_t b = 0; b < s.n; ++b) {
            const int64_t at = (b * s.c + c) * s.hw;
            float sums[2];
            plane_grad_sums(x + at, y + at, dy + at, dx + at, s.hw, m, alpha, sums);
            sum_dz += sums[0];
            sum_dz_xc += sums[1];
        }
        // xhat = (x - m) * rstd: dgamma = rstd * sum dz (x - m); dx = gamma rstd (dz - sum dz / M - xhat dgamma / M)
        const float g = gamma[c];
        dgamma[c] = static_cast<float>(sum_dz_xc * rstd);
        dbeta[c] = static_cast<float>(sum_dz);
        const float a = static_cast<float>(sum_dz / count);
        const float b = static_cast<float>(sum_dz_xc / count) * rstd * rstd;
        for (int64_t i = 0; i < s.n; ++i) {
            const int64_t at = (i * s.c + c) * s.hw;
            plane_grad_input(x + at, dx + at, s.hw, m, g * rstd, a, b);
        }
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
