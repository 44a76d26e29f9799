// Convolutions with few output pixels per image (D's 8x8 -> 4x4 layer, and G's 4x4 -> 8x8 one that transposes it)
// as one matrix product over the whole batch.
//
// Why: oneDNN's direct convolution kernels block over output pixels; with 16 of them per image they lose
// efficiency (this 8.6-GFLOP layer: forward 41 ms, backward-data 46, backward-weights 50 at B=128 on a 2-core
// Intel Xeon with AVX-512), while oneDNN's matmul (brg_matmul) runs the same arithmetic in ~30 ms. So each of the
// three passes becomes one product on the im2col matrix col (M x K), M = n * ho * wo output pixels,
// K = c * k * k kernel taps (row-major, columns ordered c, kh, kw). Activations are NHWC (see dnnl_conv.cc), so y
// and dy are (M x o) matrices as they lie:
//   forward           y (M x o) = col (M x K) . W^T
//   backward-data     dcol (M x K) = dy (M x o) . W (o x K)   then col2im: dx = sum of dcol over the taps
//   backward-weights  dW (o x K) = dy^T (o x M) . col (M x K)
// W is the OIHW weight read as an (o x K) matrix. im2col and col2im, which oneDNN does not offer, are written here.
//
// In bf16 (--amp_level O1/O2 on a CPU with native bf16; bf16_route says which passes of which layers) the products
// take bf16 operands (oneDNN's bf16 matmul accumulates in fp32; y, dcol and dW are fp32). Their col's columns are
// ordered (kh, kw, ci), so im2col converts, and col2im adds, each tap's channels as they lie in the NHWC image; W is
// read, and dW written back, in OIHW order.
#include "conv_gemm.h"

#include "dnnl_runtime.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <immintrin.h>
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

dnnl_memory_desc_t matrix(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                          int type = dnnl_f32) {
    dnnl_dims_t dims = {rows, cols}, strides = {row_stride, col_stride};
    dnnl_memory_desc_t md = nullptr;
    check(dnnl_memory_desc_create_with_strides(&md, 2, dims, type, strides), "matrix descriptor");
    return md;
}

// The product of one pass; bf16: its two operands are bf16, its result fp32.
GemmKernel *build(ConvPass pass, const ConvGeometry &g, bool bf16) {
    Context &ctx = context();
    GemmKernel *k = new GemmKernel();
    if (!ctx.ok) return k;
    const int64_t M = g.n * g.ho * g.wo, K = g.c * g.k * g.k, O = g.o;
    const int operand = bf16 ? dnnl_bf16 : dnnl_f32;
    dnnl_memory_desc_t a, b, c;
    if (pass == kForward) {
        a = matrix(M, K, K, 1, operand), b = matrix(K, O, 1, K, operand), c = matrix(M, O, O, 1);
    } else if (pass == kBackwardData) {
        a = matrix(M, O, O, 1, operand), b = matrix(O, K, K, 1, operand), c = matrix(M, K, K, 1);
    } else {
        a = matrix(O, M, 1, O, operand), b = matrix(M, K, K, 1, operand), c = matrix(O, K, K, 1);
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

// Calls visit(b, taps, pixel) for each output pixel (oh, ow) of images [first, last), pixel = (b * ho + oh) * wo + ow
// being its row of col.
template <typename Visit>
void for_each_output_pixel(const ConvGeometry &g, int64_t first, int64_t last, Visit visit) {
    for (int64_t b = first; b < last; ++b)
        for (int64_t oh = 0; oh < g.ho; ++oh)
            for (int64_t ow = 0; ow < g.wo; ++ow) visit(b, Taps(g, oh, ow), (b * g.ho + oh) * g.wo + ow);
}

// col[(b, oh, ow), (ci, kh, kw)] = x[b, oh * s - p + kh, ow * s - p + kw, ci], zero outside the image.
// KS: the kernel size when known at compile time (DCGAN's 4), so the inner loops unroll; 0: g.k at run time.
template <int KS>
void im2col(const ConvGeometry &g, const float *x, float *col) {
    const int64_t k = KS ? KS : g.k, kk = k * k, K = g.c * kk, row = g.w * g.c;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        for_each_output_pixel(g, first, last, [&](int64_t b, const Taps &t, int64_t pixel) {
            float *out = col + pixel * K;
            const float *in = x + (b * g.h + t.ih0) * row + t.iw0 * g.c;  // tap (0, 0), channel 0
            if (!t.all(k)) std::memset(out, 0, K * sizeof(float));
            for (int64_t kh = t.kh0; kh < t.kh1; ++kh)
                for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
                    const float *from = in + kh * row + kw * g.c;
                    float *tap = out + kh * k + kw;
                    for (int64_t ci = 0; ci < g.c; ++ci) tap[ci * kk] = from[ci];
                }
        });
    });
}

// dx[b, ih, iw, ci] = sum of dcol[(b, oh, ow), (ci, kh, kw)] over the taps that read (ih, iw). Images are split
// among the threads, so no two threads write the same element.
template <int KS>
void col2im(const ConvGeometry &g, const float *dcol, float *dx) {
    const int64_t k = KS ? KS : g.k, kk = k * k, K = g.c * kk, row = g.w * g.c, image = g.h * row;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        std::memset(dx + first * image, 0, (last - first) * image * sizeof(float));
        for_each_output_pixel(g, first, last, [&](int64_t b, const Taps &t, int64_t pixel) {
            const float *in = dcol + pixel * K;
            float *out = dx + (b * g.h + t.ih0) * row + t.iw0 * g.c;
            for (int64_t kh = t.kh0; kh < t.kh1; ++kh)
                for (int64_t kw = t.kw0; kw < t.kw1; ++kw) {
                    float *to = out + kh * row + kw * g.c;
                    const float *tap = in + kh * k + kw;
                    for (int64_t ci = 0; ci < g.c; ++ci) to[ci] += tap[ci * kk];
                }
        });
    });
}

void im2col(const ConvGeometry &g, const float *x, float *col) {
    g.k == 4 ? im2col<4>(g, x, col) : im2col<0>(g, x, col);
}

void col2im(const ConvGeometry &g, const float *dcol, float *dx) {
    g.k == 4 ? col2im<4>(g, dcol, dx) : col2im<0>(g, dcol, dx);
}

using bf16_t = uint16_t;

#if (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10) || (defined(__clang__) && __clang_major__ >= 9)
#define DCGAN_BF16_INTRINSICS 1
// 16 values per instruction (vcvtneps2bf16). Only called where the CPU has AVX512-BF16: the bf16 kernels run only
// after src/cpu/bf16.py found native bf16, and every CPU with AMX has AVX512-BF16 too.
__attribute__((target("avx512f,avx512vl,avx512bf16"))) int64_t to_bf16_vector(const float *in, bf16_t *out,
                                                                               int64_t n) {
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256bh rounded = _mm512_cvtneps_pbh(_mm512_loadu_ps(in + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i *>(out + i), reinterpret_cast<const __m256i &>(rounded));
    }
    return i;
}
#endif

// fp32 -> bf16 rounded to nearest even, as the instruction and oneDNN's reorders round; a NaN stays a NaN.
bf16_t to_bf16(float value) {
    uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u) return static_cast<bf16_t>((bits >> 16) | 0x40);
    return static_cast<bf16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

// out[i] = bf16(in[i]) for n values.
void to_bf16(const float *in, bf16_t *out, int64_t n) {
    int64_t done = 0;
#ifdef DCGAN_BF16_INTRINSICS
    done = to_bf16_vector(in, out, n);
#endif
    for (int64_t i = done; i < n; ++i) out[i] = to_bf16(in[i]);
}

// A bf16 copy of n fp32 values in arena(slot), or null when it cannot be allocated.
bf16_t *to_bf16(const void *values, int64_t n, int slot) {
    bf16_t *out = static_cast<bf16_t *>(arena(slot, n * sizeof(bf16_t)));
    if (!out) return nullptr;
    const float *in = static_cast<const float *>(values);
    parallel_range((n + 1023) / 1024, [&](int64_t first, int64_t last) {  // blocks of 1,024 values
        to_bf16(in + first * 1024, out + first * 1024, std::min(n, last * 1024) - first * 1024);
    });
    return out;
}

// col[(b, oh, ow), (kh, kw, ci)] = x[b, oh * s - p + kh, ow * s - p + kw, ci] in bf16, zero outside the image: for
// each kh the taps inside the image are one run of channels-last pixels, converted as they lie.
void im2col_taps_last(const ConvGeometry &g, const float *x, bf16_t *col) {
    const int64_t K = g.c * g.k * g.k, row = g.w * g.c;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        for_each_output_pixel(g, first, last, [&](int64_t b, const Taps &t, int64_t pixel) {
            bf16_t *out = col + pixel * K;
            if (!t.all(g.k)) std::memset(out, 0, K * sizeof(bf16_t));
            for (int64_t kh = t.kh0; kh < t.kh1; ++kh)
                to_bf16(x + (b * g.h + t.ih0 + kh) * row + (t.iw0 + t.kw0) * g.c, out + (kh * g.k + t.kw0) * g.c,
                        (t.kw1 - t.kw0) * g.c);
        });
    });
}

// dx[b, ih, iw, ci] = sum of dcol[(b, oh, ow), (kh, kw, ci)] over the taps that read (ih, iw): for each kh, a run
// of channels-last pixels. Images are split among the threads, so no two threads write the same element.
void col2im_taps_last(const ConvGeometry &g, const float *dcol, float *dx) {
    const int64_t K = g.c * g.k * g.k, row = g.w * g.c, image = g.h * row;
    parallel_range(g.n, [&](int64_t first, int64_t last) {
        std::memset(dx + first * image, 0, (last - first) * image * sizeof(float));
        for_each_output_pixel(g, first, last, [&](int64_t b, const Taps &t, int64_t pixel) {
            const float *in = dcol + pixel * K;
            const int64_t run = (t.kw1 - t.kw0) * g.c;
            for (int64_t kh = t.kh0; kh < t.kh1; ++kh) {
                const float *from = in + (kh * g.k + t.kw0) * g.c;
                float *to = dx + (b * g.h + t.ih0 + kh) * row + (t.iw0 + t.kw0) * g.c;
                for (int64_t i = 0; i < run; ++i) to[i] += from[i];
            }
        });
    });
}

// Calls f(taps_last, oihw) for every weight, with its index in the taps-last (o, kh, kw, ci) order and in OIHW.
template <typename F>
void for_each_weight(const ConvGeometry &g, F f) {
    const int64_t kk = g.k * g.k;
    parallel_range(g.o, [&](int64_t first, int64_t last) {
        for (int64_t o = first; o < last; ++o)
            for (int64_t tap = 0; tap < kk; ++tap)
                for (int64_t ci = 0; ci < g.c; ++ci) f((o * kk + tap) * g.c + ci, (o * g.c + ci) * kk + tap);
    });
}

// The OIHW weights as the bf16 (o x K) matrix of the taps-last products: w[o, (kh, kw, ci)].
void weights_taps_last(const ConvGeometry &g, const float *oihw, bf16_t *w) {
    for_each_weight(g, [&](int64_t taps_last, int64_t index) { w[taps_last] = to_bf16(oihw[index]); });
}

// The weight gradient in OIHW from the taps-last product's (o, kh, kw, ci).
void weights_to_oihw(const ConvGeometry &g, const float *product, float *dw) {
    for_each_weight(g, [&](int64_t taps_last, int64_t index) { dw[index] = product[taps_last]; });
}

// The product of `pass` for this geometry, built on first use.
GemmKernel &kernel(ConvPass pass, const ConvGeometry &g, bool bf16) {
    using Key = std::tuple<int, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int, int, bool>;
    static std::map<Key, std::unique_ptr<GemmKernel>> cache;
    auto &slot = cache[Key(pass, g.n, g.c, g.h, g.w, g.o, g.k, g.ho, g.wo, g.stride, g.pad, bf16)];
    if (!slot) slot.reset(build(pass, g, bf16));
    return *slot;
}

bool execute(dnnl_primitive_t prim, int n, dnnl_exec_arg_t *args, const char *what) {
    return check(dnnl_primitive_execute(prim, context().stream, n, args), what);
}

}  // namespace

Bf16Route bf16_route(ConvPass pass, const ConvGeometry &g) {
    // Measured with AVX512-BF16 and no AMX (2-core AMD EPYC, B 128, bench/train_step.py --amp_level O1, the
    // alternatives alternated; bench/RESULTS.md, 2026-12-07):
    // - weight gradient: oneDNN's bf16 kernel (jit_bf16, which transposes its operands) was slower than its fp32
    //   one (model zoo, 32 px: 458 against 402 ms per step); the bf16 product takes ~60% of the fp32 kernel's time
    //   (step -8% narrow, -17% model zoo, both against fp32 weight gradients).
    // - forward with at most 16 output pixels (D's 8x8 -> 4x4 layer): the product beat oneDNN's bf16 kernel and
    //   its weight reorder (step -3% model zoo, -4% narrow).
    // - backward-data into 1-4 channels (D's input gradient, G's last layer): oneDNN's bf16 kernel blocks over the
    //   few channels and runs at a few GFLOP/s; the product + col2im runs as fast as the fp32 product did.
    // With AMX (not measured here) every pass runs on oneDNN's bf16 kernels.
    static const bool amx = (dnnl_get_effective_cpu_isa() & DNNL_CPU_ISA_AMX_BITS) == DNNL_CPU_ISA_AMX_BITS;
    if (amx) return kBf16Direct;
    if (pass == kBackwardWeights) return kBf16Product;
    if (pass == kForward && g.ho * g.wo <= 16 && g.c >= 16) return kBf16Product;
    if (pass == kBackwardData && g.c <= 4) return kBf16Product;
    return kBf16Direct;
}

bool gemm_conv_preferred(ConvPass pass, const ConvGeometry &g) {
    // Measured on DCGAN's layers (bench/RESULTS.md): with AVX-512 the product wins at 4x4 outputs (~20% per pass,
    // im2col included) and loses at 8x8 and above, where the direct kernels are efficient and im2col's copy grows;
    // with AVX2 only (oneDNN capped there) the direct kernels won at 4x4 too (~5% of the narrow step; ~8% again
    // once the activations were channels-last).
    // One exception: the backward-data pass into an image of 1-4 channels (D's first layer in the G step, and G's
    // last layer, a transposed convolution, forward), where oneDNN's direct kernel (brgconv_strided) blocks over
    // the few input channels and runs at a few GFLOP/s: the product plus col2im takes a third to a half of its time.
    // And with AVX2, the weight gradient of a one-channel image (D's first layer on MNIST and digits): the direct
    // kernel pads the channel to a block of 8; the product takes half its time (B 128, 32 px, 2-core AMD EPYC capped
    // at AVX2).
    static const bool avx512 = (dnnl_get_effective_cpu_isa() & DNNL_CPU_ISA_AVX512_CORE_BIT) != 0;
    return (avx512 && g.ho * g.wo <= 16) || (pass == kBackwardData && g.c <= 4) ||
           (!avx512 && pass == kBackwardWeights && g.c == 1);
}

int gemm_conv(ConvPass pass, const ConvGeometry &g, void *const *params) {
    GemmKernel &k = kernel(pass, g, false);
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

int gemm_conv_bf16(ConvPass pass, const ConvGeometry &g, void *const *params) {
    GemmKernel &k = kernel(pass, g, true);
    if (!k.ok) return 3;
    const int64_t M = g.n * g.ho * g.wo, K = g.c * g.k * g.k;
    // Arena slots: 0 col (bf16) or dcol (fp32); 1 and 2 the other operands in bf16, or the weight gradient's product.
    void *src, *weights, *dst;
    if (pass == kForward) {  // (x, w) -> y
        bf16_t *col = static_cast<bf16_t *>(arena(0, M * K * sizeof(bf16_t)));
        bf16_t *w = static_cast<bf16_t *>(arena(1, g.o * K * sizeof(bf16_t)));
        if (!col || !w) return 5;
        im2col_taps_last(g, static_cast<const float *>(params[0]), col);
        weights_taps_last(g, static_cast<const float *>(params[1]), w);
        src = col, weights = w, dst = params[2];
    } else if (pass == kBackwardData) {  // (dy, w) -> dx
        bf16_t *w = static_cast<bf16_t *>(arena(2, g.o * K * sizeof(bf16_t)));
        src = to_bf16(params[0], M * g.o, 1);
        dst = arena(0, M * K * sizeof(float));
        if (!w || !src || !dst) return 5;
        weights_taps_last(g, static_cast<const float *>(params[1]), w);
        weights = w;
    } else {  // (x, dy) -> dw
        bf16_t *col = static_cast<bf16_t *>(arena(0, M * K * sizeof(bf16_t)));
        if (!col) return 5;
        im2col_taps_last(g, static_cast<const float *>(params[0]), col);
        src = to_bf16(params[1], M * g.o, 1);
        dst = arena(2, g.o * K * sizeof(float));
        if (!src || !dst) return 5;
        weights = col;
    }
    dnnl_memory_set_data_handle(k.src, src);
    dnnl_memory_set_data_handle(k.weights, weights);
    dnnl_memory_set_data_handle(k.dst, dst);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, k.src}, {DNNL_ARG_WEIGHTS, k.weights}, {DNNL_ARG_DST, k.dst}};
    if (!execute(k.matmul, 3, args, "matmul")) return 4;
    dnnl_stream_wait(context().stream);
    if (pass == kBackwardData) col2im_taps_last(g, static_cast<const float *>(dst), static_cast<float *>(params[2]));
    if (pass == kBackwardWeights) weights_to_oihw(g, static_cast<const float *>(dst), static_cast<float *>(params[2]));
    return 0;
}

}  // namespace dcgan_dnnl
