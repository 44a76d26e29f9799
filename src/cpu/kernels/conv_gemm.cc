// Convolutions with few output pixels per image (D's 8x8 -> 4x4 layer, and G's 4x4 -> 8x8 one that transposes it)
// as one matrix product over the whole batch.
//
// Why: oneDNN's direct convolution kernels block over output pixels; with 16 of them per image they lose
// efficiency (this 8.6-GFLOP layer: forward 41 ms, backward-data 46, backward-weights 50 at B=128 on a 2-core
// Intel Xeon with AVX-512), while oneDNN's matmul (brg_matmul) runs the same arithmetic in ~30 ms. So each of the three passes becomes one
// product on the im2col matrix col (M x K), M = n * ho * wo output pixels, K = c * k * k kernel taps (row-major,
// columns ordered c, kh, kw). Activations are NHWC (see dnnl_conv.cc), so y and dy are (M x o) matrices as they lie:
//   forward           y (M x o) = col (M x K) . W^T
//   backward-data     dcol (M x K) = dy (M x o) . W (o x K)   then col2im: dx = sum of dcol over the taps
//   backward-weights  dW (o x K) = dy^T (o x M) . col (M x K)
// W is the OIHW weight read as an (o x K) matrix. im2col and col2im, which oneDNN does not offer, are written here.
#include "conv_gemm.h"

#include "dnnl_runtime.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <tuple>

namespace dcgan_dnnl {
namespace {

struct GemmKernel {
    dnnl_primitive_t matmul = nullptr;
    dnnl_memory_t src = nullptr, weights = nullptr, dst = nullptr;  // the product's operands, handles set per call
    bool ok = false;
};

dnnl_memory_desc_t matrix(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    dnnl_memory_desc_t md = nullptr;
    check(dnnl_memory_desc_create_with_strides(&md, 2, dims, dnnl_f32, strides), "matrix descriptor");
    return md;
}

GemmKernel *build(ConvPass pass, const ConvGeometry &g) {
    Context &ctx = context();
    GemmKernel *k = new GemmKernel();
    if (!ctx.ok) return k;
    const int64_t M = g.n * g.ho * g.wo, K = g.c * g.k * g.k, O = g.o;
    dnnl_memory_desc_t a, b, c;
    if (pass == kForward) {
        a = matrix(M, K, K, 1), b = matrix(K, O, 1, K), c = matrix(M, O, O, 1);
    } else if (pass == kBackwardData) {
        a = matrix(M, O, O, 1), b = matrix(O, K, K, 1), c = matrix(M, K, K, 1);
    } else {
        a = matrix(O, M, 1, O), b = matrix(M, K, K, 1), c = matrix(O, K, K, 1);
    }
    dnnl_primitive_desc_t mpd = nullptr;
    bool ok = a && b && c &&
              check(dnnl_matmul_primitive_desc_create(&mpd, ctx.engine, a, b, nullptr, c, nullptr), "matmul") &&
              check(dnnl_primitive_create(&k->matmul, mpd), "matmul primitive") &&
              check(dnnl_memory_create(&k->src, a, ctx.engine, nullptr), "memory") &&
              check(dnnl_memory_create(&k->weights, b, ctx.engine, nullptr), "memory") &&
              check(dnnl_memory_create(&k->dst, c, ctx.engine, nullptr), "memory");
    for (auto md : {a, b, c})
        if (md) dnnl_memory_desc_destroy(md);
    if (mpd) dnnl_primitive_desc_destroy(mpd);
    k->ok = ok;
    return k;
}

// Runs fn(first, last) over [0, n) split into one contiguous range per pool thread.
template <typename F>
void parallel_range(int64_t n, F fn) {
    ThreadPool &pool = *context().pool;
    const int parts = static_cast<int>(std::min<int64_t>(pool.get_num_threads(), n));
    pool.parallel_for(parts, [&](int i, int total) { fn(n * i / total, n * (i + 1) / total); });
}

// The taps of output pixel (oh, ow) that fall inside the image: kh in [kh0, kh1), kw in [kw0, kw1).
struct Taps {
    int64_t ih0, iw0, kh0, kh1, kw0, kw1;
    Taps(const ConvGeometry &g, int64_t oh, int64_t ow)
        : ih0(oh * g.stride - g.pad), iw0(ow * g.stride - g.pad), kh0(std::max<int64_t>(0, -ih0)),
          kh1(std::min<int64_t>(g.k, g.h - ih0)), kw0(std::max<int64_t>(0, -iw0)),
          kw1(std::min<int64_t>(g.k, g.w - iw0)) {}
    bool all(int64_t k) const { return kh0 == 0 && kw0 == 0 && kh1 == k && kw1 == k; }
};

// col[(b, oh, ow), (ci, kh, kw)] = x[b, oh * s - p + kh, ow * s - p + kw, ci], zero outside the image.
// KS: the kernel size when known at compile time (DCGAN's 4), so the inner loops unroll; 0: g.k at run time.
template <int KS>
void im2col(const ConvGeometry &g, const float *x, float *col) {
    const int64_t k = KS ? KS : g.k, kk = k * k, K = g.c * kk, row = g.w * g.c;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        for (int64_t b = first; b < last; ++b)
            for (int64_t oh = 0; oh < g.ho; ++oh)
                for (int64_t ow = 0; ow < g.wo; ++ow) {
                    const Taps t(g, oh, ow);
                    float *out = col + ((b * g.ho + oh) * g.wo + ow) * K;
                    const float *in = x + (b * g.h + t.ih0) * row + t.iw0 * g.c;  // tap (0, 0), channel 0
                    if (!t.all(k)) std::memset(out, 0, K * sizeof(float));
                    for (int64_t kh = t.kh0; kh < t.kh1; ++kh)
                        for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
                            const float *pixel = in + kh * row + kw * g.c;
                            float *tap = out + kh * k + kw;
                            for (int64_t ci = 0; ci < g.c; ++ci) tap[ci * kk] = pixel[ci];
                        }
                }
    });
}

// dx[b, ih, iw, ci] = sum of dcol[(b, oh, ow), (ci, kh, kw)] over the taps that read (ih, iw). Images are split
// among the threads, so no two threads write the same element.
template <int KS>
void col2im(const ConvGeometry &g, const float *dcol, float *dx) {
    const int64_t k = KS ? KS : g.k, kk = k * k, K = g.c * kk, row = g.w * g.c, image = g.h * row;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        std::memset(dx + first * image, 0, (last - first) * image * sizeof(float));
        for (int64_t b = first; b < last; ++b)
            for (int64_t oh = 0; oh < g.ho; ++oh)
                for (int64_t ow = 0; ow < g.wo; ++ow) {
                    const Taps t(g, oh, ow);
                    const float *in = dcol + ((b * g.ho + oh) * g.wo + ow) * K;
                    float *out = dx + (b * g.h + t.ih0) * row + t.iw0 * g.c;
                    for (int64_t kh = t.kh0; kh < t.kh1; ++kh)
                        for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
                            float *pixel = out + kh * row + kw * g.c;
                            const float *tap = in + kh * k + kw;
                            for (int64_t ci = 0; ci < g.c; ++ci) pixel[ci] += tap[ci * kk];
                        }
                }
    });
}

void im2col(const ConvGeometry &g, const float *x, float *col) {
    g.k == 4 ? im2col<4>(g, x, col) : im2col<0>(g, x, col);
}

void col2im(const ConvGeometry &g, const float *dcol, float *dx) {
    g.k == 4 ? col2im<4>(g, dcol, dx) : col2im<0>(g, dcol, dx);
}

bool execute(dnnl_primitive_t prim, int n, dnnl_exec_arg_t *args, const char *what) {
    return check(dnnl_primitive_execute(prim, context().stream, n, args), what);
}

}  // namespace

bool gemm_conv_preferred(ConvPass pass, const ConvGeometry &g) {
    // Measured on DCGAN's layers (bench/RESULTS.md): with AVX-512 the product wins at 4x4 outputs (~20% per pass,
    // im2col included) and loses at 8x8 and above, where the direct kernels are efficient and im2col's copy grows;
    // with AVX2 only (oneDNN capped there) the direct kernels won at 4x4 too (~5% of the narrow step; ~8% again
    // once the activations were channels-last).
    // One exception: the backward-data pass into an image of 1-4 channels (D's first layer in the G step, and G's
    // last layer, a transposed convolution, forward), where oneDNN's direct kernel (brgconv_strided) blocks over
    // the few input channels and runs at a few GFLOP/s: the product plus col2im takes a third to a half of its time.
    // And with AVX2, the weight gradient of a one-channel image (D's first layer on MNIST and digits): the direct
    // kernel pads the channel to a block of 8; the product takes half its time (B 128, 32 px, 2-core AMD EPYC capped at AVX2).
    static const bool avx512 = (dnnl_get_effective_cpu_isa() & DNNL_CPU_ISA_AVX512_CORE_BIT) != 0;
    return (avx512 && g.ho * g.wo <= 16) || (pass == kBackwardData && g.c <= 4) ||
           (!avx512 && pass == kBackwardWeights && g.c == 1);
}

int gemm_conv(ConvPass pass, const ConvGeometry &g, void *const *params) {
    using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int>;
    static std::map<Key, std::unique_ptr<GemmKernel>> cache;
    auto &slot = cache[Key(pass, g.n, g.c, g.h, g.w, g.o, g.k, g.ho, g.wo, g.stride, g.pad)];
    if (!slot) slot.reset(build(pass, g));
    GemmKernel &k = *slot;
    if (!k.ok) return 3;
    const int64_t M = g.n * g.ho * g.wo, K = g.c * g.k * g.k;
    float *col = static_cast<float *>(arena(0, M * K * sizeof(float)));
    if (!col) return 5;
    if (pass == kForward) {  // (x, w) -> y
        im2col(g, static_cast<const float *>(params[0]), col);
        dnnl_memory_set_data_handle(k.src, col);
        dnnl_memory_set_data_handle(k.weights, params[1]);
        dnnl_memory_set_data_handle(k.dst, params[2]);
    } else if (pass == kBackwardData) {  // (dy, w) -> dx
        dnnl_memory_set_data_handle(k.src, params[0]);
        dnnl_memory_set_data_handle(k.weights, params[1]);
        dnnl_memory_set_data_handle(k.dst, col);
    } else {  // (x, dy) -> dw
        im2col(g, static_cast<const float *>(params[0]), col);
        dnnl_memory_set_data_handle(k.src, params[1]);
        dnnl_memory_set_data_handle(k.weights, col);
        dnnl_memory_set_data_handle(k.dst, params[2]);
    }
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, k.src}, {DNNL_ARG_WEIGHTS, k.weights}, {DNNL_ARG_DST, k.dst}};
    if (!execute(k.matmul, 3, args, "matmul")) return 4;
    dnnl_stream_wait(context().stream);
    if (pass == kBackwardData) col2im(g, col, static_cast<float *>(params[2]));
    return 0;
}

}  // namespace dcgan_dnnl
