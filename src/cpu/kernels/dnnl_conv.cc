// 2-D convolution kernels for MindSpore ops.Custom (func_type "aot", CPU) that call oneDNN directly.
//
// Why: MindSpore 2.10 hands oneDNN plain NCHW tensors for its CPU convolutions; on AVX-512 CPUs oneDNN then picks a
// reference kernel, so without these kernels src/cpu/device.py caps oneDNN at AVX2. Here each convolution runs
// oneDNN's own kernels at the CPU's full instruction set on channels-last (NHWC) activations, the layout G and D
// keep between the project's kernels (src/cpu/fast_layers.py): oneDNN's NHWC kernels (brg_conv_fwd, brgconv_strided)
// need no reorder of the activations, which on the narrow nets (ngf = ndf = 32) cost ~8% of a step (2-core AMD EPYC,
// AVX-512) when they went NCHW -> blocked -> NCHW around every convolution. Weights stay in the OIHW tensors
// MindSpore holds (small reorders to oneDNN's layout).
// It runs on MindSpore's own libdnnl.so.3 (engine, stream and threadpool in dnnl_runtime.h).
//
// Three kernels cover Conv2d and Conv2dTranspose, forward and backward (no bias, no dilation, one group, square
// stride s and padding p, encoded in the entry point's name: ConvFwd_s2p1 etc.):
//   ConvFwd(x NHWC, w OIHW) -> y NHWC     ConvBwdData(dy, w OIHW[, x]) -> dx     ConvBwdWeights(x, dy) -> dw OIHW
// (ConvBwdData's optional x only gives dx its shape.) Some passes take the matrix-product route of conv_gemm.cc
// instead (gemm_conv_preferred says which: small outputs with AVX-512, images of a few channels).
// Mixed precision (entry points ending in _bf16, for CPUs with native bf16): the two operands of each pass are
// reordered from the fp32 tensors to bf16 inside the kernel, oneDNN accumulates in fp32 and the result is fp32, so
// weights, gradients and everything outside the convolutions stay fp32. bf16_route (conv_gemm.cc) says, per pass
// and layer, whether it runs on oneDNN's bf16 kernels or as a bf16 matrix product.
// The aot entry point signature: int f(int nparam, void **params, int *ndims, int64_t **shapes,
// const char **dtypes, void *stream, void *extra); inputs first, then the output.
#include "conv_gemm.h"
#include "dnnl_runtime.h"

#include <cstdlib>
#include <cstring>
#include <map>
#include <tuple>

namespace {
using namespace dcgan_dnnl;

// One tensor argument of a primitive: the user's tensor (NHWC activations, OIHW weights) and, when the primitive
// wants another layout (the weights), a buffer in that layout and the reorder between the two.
struct Arg {
    int arg = 0;
    bool output = false;
    dnnl_memory_desc_t user_md = nullptr;
    dnnl_memory_t user_mem = nullptr;
    dnnl_memory_t inner_mem = nullptr;  // null when the layouts agree; its buffer is arena(slot) at run time
    size_t inner_bytes = 0;
    dnnl_primitive_t reorder = nullptr;
};

struct Kernel {
    dnnl_primitive_t prim = nullptr;
    Arg args[3];  // two inputs, then the output, in the order of the entry point's params
    bool ok = false;
};

using Kind = ConvPass;

// oneDNN's dims are always (N, C, H, W) / (O, I, H, W); the tag says how they lie in memory.
void logical_dims(const int64_t *shape, bool activation, dnnl_dims_t dims) {
    const int64_t nchw[4] = {shape[0], shape[3], shape[1], shape[2]};
    std::memcpy(dims, activation ? nchw : shape, 4 * sizeof(int64_t));
}

bool init_arg(Arg &a, int arg, bool output, const int64_t *shape, bool activation, const_dnnl_memory_desc_t want,
              dnnl_engine_t eng) {
    a.arg = arg;
    a.output = output;
    dnnl_dims_t dims = {};
    logical_dims(shape, activation, dims);
    if (!check(dnnl_memory_desc_create_with_tag(&a.user_md, 4, dims, dnnl_f32, activation ? dnnl_acdb : dnnl_abcd),
               "memory_desc"))
        return false;
    if (!check(dnnl_memory_create(&a.user_mem, a.user_md, eng, nullptr), "memory")) return false;
    if (dnnl_memory_desc_equal(a.user_md, want)) return true;
    if (!check(dnnl_memory_create(&a.inner_mem, want, eng, nullptr), "memory")) return false;
    a.inner_bytes = dnnl_memory_desc_get_size(want);
    dnnl_primitive_desc_t rpd = nullptr;
    bool ok = output ? check(dnnl_reorder_primitive_desc_create(&rpd, want, eng, a.user_md, eng, nullptr), "reorder")
                     : check(dnnl_reorder_primitive_desc_create(&rpd, a.user_md, eng, want, eng, nullptr), "reorder");
    ok = ok && check(dnnl_primitive_create(&a.reorder, rpd), "reorder primitive");
    if (rpd) dnnl_primitive_desc_destroy(rpd);
    return ok;
}

// Shapes of the convolution (x: N H W C, w: O C K K, y: N Ho Wo O) from the kernel's two inputs and output.
void conv_shapes(Kind kind, int64_t **shapes, const int64_t *&x, const int64_t *&w, const int64_t *&y) {
    if (kind == kForward) { x = shapes[0]; w = shapes[1]; y = shapes[2]; }
    else if (kind == kBackwardData) { y = shapes[0]; w = shapes[1]; x = shapes[2]; }
    else { x = shapes[0]; y = shapes[1]; w = shapes[2]; }
}

Kernel *build(Kind kind, int stride, int pad, int64_t **shapes, bool bf16) {
    Context &ctx = context();
    Kernel *k = new Kernel();
    if (!ctx.ok) return k;
    const int64_t *xs, *ws, *ys;
    conv_shapes(kind, shapes, xs, ws, ys);
    dnnl_dims_t xd = {}, wd = {}, yd = {};
    logical_dims(xs, true, xd);
    logical_dims(ws, false, wd);
    logical_dims(ys, true, yd);
    dnnl_dims_t strides = {stride, stride}, dil = {0, 0}, pl = {pad, pad};
    // Right/bottom padding that makes the output size exact (PyTorch/MindSpore floor the output size).
    dnnl_dims_t pr = {(yd[2] - 1) * stride + wd[2] - xd[2] - pad, (yd[3] - 1) * stride + wd[3] - xd[3] - pad};
    // Activations as they are (NHWC), the weights in whatever layout the chosen kernel wants. In bf16 the pass's
    // two operands are bf16 and its result fp32; the backward passes' forward hint is all bf16.
    const int low = bf16 ? dnnl_bf16 : dnnl_f32;
    const int xt = kind == kBackwardData ? dnnl_f32 : low, wt = kind == kBackwardWeights ? dnnl_f32 : low;
    const int yt = kind == kForward ? dnnl_f32 : low;
    dnnl_memory_desc_t xa = nullptr, wa = nullptr, ya = nullptr, hx = nullptr, hw = nullptr, hy = nullptr;
    dnnl_memory_desc_create_with_tag(&xa, 4, xd, xt, dnnl_acdb);
    dnnl_memory_desc_create_with_tag(&wa, 4, wd, wt, dnnl_format_tag_any);
    dnnl_memory_desc_create_with_tag(&ya, 4, yd, yt, dnnl_acdb);
    dnnl_memory_desc_create_with_tag(&hx, 4, xd, low, dnnl_acdb);
    dnnl_memory_desc_create_with_tag(&hw, 4, wd, low, dnnl_format_tag_any);
    dnnl_memory_desc_create_with_tag(&hy, 4, yd, yt, dnnl_acdb);
    dnnl_primitive_desc_t fwd = nullptr, pd = nullptr;
    bool ok = check(dnnl_convolution_forward_primitive_desc_create(&fwd, ctx.engine, dnnl_forward_training,
                                                                   dnnl_convolution_direct, hx, hw, nullptr, hy,
                                                                   strides, dil, pl, pr, nullptr),
                    "convolution forward descriptor");
    if (ok && kind == kForward) {
        pd = fwd;
        fwd = nullptr;
    } else if (ok && kind == kBackwardData) {
        ok = check(dnnl_convolution_backward_data_primitive_desc_create(&pd, ctx.engine, dnnl_convolution_direct, xa,
                                                                        wa, ya, strides, dil, pl, pr, fwd, nullptr),
                   "convolution backward-data descriptor");
    } else if (ok) {
        ok = check(dnnl_convolution_backward_weights_primitive_desc_create(&pd, ctx.engine, dnnl_convolution_direct,
                                                                           xa, wa, nullptr, ya, strides, dil, pl, pr,
                                                                           fwd, nullptr),
                   "convolution backward-weights descriptor");
    }
    if (ok) {
        int in0, in1, out, q0, q1, qo;
        if (kind == kForward) {
            in0 = DNNL_ARG_SRC; q0 = dnnl_query_src_md; in1 = DNNL_ARG_WEIGHTS; q1 = dnnl_query_weights_md;
            out = DNNL_ARG_DST; qo = dnnl_query_dst_md;
        } else if (kind == kBackwardData) {
            in0 = DNNL_ARG_DIFF_DST; q0 = dnnl_query_diff_dst_md; in1 = DNNL_ARG_WEIGHTS; q1 = dnnl_query_weights_md;
            out = DNNL_ARG_DIFF_SRC; qo = dnnl_query_diff_src_md;
        } else {
            in0 = DNNL_ARG_SRC; q0 = dnnl_query_src_md; in1 = DNNL_ARG_DIFF_DST; q1 = dnnl_query_diff_dst_md;
            out = DNNL_ARG_DIFF_WEIGHTS; qo = dnnl_query_diff_weights_md;
        }
        const bool w_second = kind != kBackwardWeights;  // w is the second input, else the output
        ok = init_arg(k->args[0], in0, false, shapes[0], true, dnnl_primitive_desc_query_md(pd, q0, 0), ctx.engine) &&
             init_arg(k->args[1], in1, false, shapes[1], !w_second, dnnl_primitive_desc_query_md(pd, q1, 0),
                      ctx.engine) &&
             init_arg(k->args[2], out, true, shapes[2], w_second, dnnl_primitive_desc_query_md(pd, qo, 0),
                      ctx.engine) &&
             check(dnnl_primitive_create(&k->prim, pd), "convolution primitive");
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    dnnl_memory_desc_destroy(xa);
    dnnl_memory_desc_destroy(wa);
    dnnl_memory_desc_destroy(ya);
    dnnl_memory_desc_destroy(hx);
    dnnl_memory_desc_destroy(hw);
    dnnl_memory_desc_destroy(hy);
    k->ok = ok;
    return k;
}

using Key = std::tuple<int, int, int, bool, std::vector<int64_t>>;

int run(Kind kind, int stride, int pad, bool bf16, int nparam, void **params, int *ndims, int64_t **shapes,
        const char **dtypes) {
    // ConvBwdData may take a third input whose only use is its shape (the input size of a strided convolution is
    // not determined by its output size): skip it.
    void *p[3];
    int nd[3];
    int64_t *sh[3];
    const char *dt[3];
    if (nparam == 4 && kind == kBackwardData) {
        const int keep[3] = {0, 1, 3};
        for (int i = 0; i < 3; ++i) {
            p[i] = params[keep[i]]; nd[i] = ndims[keep[i]]; sh[i] = shapes[keep[i]]; dt[i] = dtypes[keep[i]];
        }
        params = p; ndims = nd; shapes = sh; dtypes = dt;
    } else if (nparam != 3) {
        return 1;
    }
    std::vector<int64_t> dims;
    for (int i = 0; i < 3; ++i) {
        if (ndims[i] != 4 || std::strcmp(dtypes[i], "float32") != 0) return 2;
        dims.insert(dims.end(), shapes[i], shapes[i] + 4);
    }
    ExecScope scope;
    const int64_t *xs, *ws, *ys;
    conv_shapes(kind, shapes, xs, ws, ys);
    const ConvGeometry geometry = {xs[0], xs[3], xs[1], xs[2], ws[0], ws[2], ys[1], ys[2], stride, pad};
    if (ws[2] == ws[3]) {
        if (bf16 && bf16_route(kind, geometry) == kBf16Product) return gemm_conv_bf16(kind, geometry, params);
        if (!bf16 && gemm_conv_preferred(kind, geometry)) return gemm_conv(kind, geometry, params);
    }
    static std::map<Key, std::unique_ptr<Kernel>> cache;
    auto &slot = cache[Key(kind, stride, pad, bf16, dims)];
    if (!slot) slot.reset(build(kind, stride, pad, shapes, bf16));
    Kernel &k = *slot;
    if (!k.ok) return 3;
    Context &ctx = context();
    dnnl_exec_arg_t args[3];
    for (int i = 0; i < 3; ++i) {
        Arg &a = k.args[i];
        dnnl_memory_set_data_handle(a.user_mem, params[i]);
        if (a.inner_mem) {
            void *buf = arena(i, a.inner_bytes);
            if (!buf) return 5;
            dnnl_memory_set_data_handle(a.inner_mem, buf);
        }
        if (a.inner_mem && !a.output) {
            dnnl_exec_arg_t r[2] = {{1 /*DNNL_ARG_FROM*/, a.user_mem}, {17 /*DNNL_ARG_TO*/, a.inner_mem}};
            if (!check(dnnl_primitive_execute(a.reorder, ctx.stream, 2, r), "reorder")) return 4;
        }
        args[i] = {a.arg, a.inner_mem ? a.inner_mem : a.user_mem};
    }
    if (!check(dnnl_primitive_execute(k.prim, ctx.stream, 3, args), "convolution")) return 4;
    Arg &o = k.args[2];
    if (o.inner_mem) {
        dnnl_exec_arg_t r[2] = {{1, o.inner_mem}, {17, o.user_mem}};
        if (!check(dnnl_primitive_execute(o.reorder, ctx.stream, 2, r), "reorder")) return 4;
    }
    dnnl_stream_wait(ctx.stream);
    return 0;
}

}  // namespace

extern "C" {
#define DNNL_CONV_ENTRY(NAME, KIND, S, P)                                                                      \
    int NAME##_s##S##p##P(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                          void *) {                                                                            \
        return run(KIND, S, P, false, nparam, params, ndims, shapes, dtypes);                                  \
    }                                                                                                          \
    int NAME##_s##S##p##P##_bf16(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, \
                                 void *, void *) {                                                             \
        return run(KIND, S, P, true, nparam, params, ndims, shapes, dtypes);                                   \
    }
DNNL_CONV_ENTRY(ConvFwd, kForward, 2, 1)
DNNL_CONV_ENTRY(ConvBwdData, kBackwardData, 2, 1)
DNNL_CONV_ENTRY(ConvBwdWeights, kBackwardWeights, 2, 1)
DNNL_CONV_ENTRY(ConvFwd, kForward, 1, 0)
DNNL_CONV_ENTRY(ConvBwdData, kBackwardData, 1, 0)
DNNL_CONV_ENTRY(ConvBwdWeights, kBackwardWeights, 1, 0)

// For the build check and the tests: oneDNN's version and CPU runtime (8 == THREADPOOL), the kernels' thread count,
// and the enum values above.
int DnnlConvInfo(int *out) {
    const dnnl_version_t *v = dnnl_version();
    out[0] = v->major; out[1] = v->minor; out[2] = v->patch; out[3] = static_cast<int>(v->cpu_runtime);
    return 0;
}
// Whether oneDNN runs bf16 natively here (its effective instruction set includes AVX512-BF16 or AMX): 1 or 0.
int DnnlNativeBf16() { return (dnnl_get_effective_cpu_isa() & DNNL_CPU_ISA_BF16_BIT) ? 1 : 0; }
int DnnlKernelThreads() { return context().pool->get_num_threads(); }
// For the tests: how a _bf16 entry point computes `pass` of a convolution with c input channels and ho x wo output
// pixels per image (1 oneDNN's bf16 kernel, 2 bf16 matrix product; see bf16_route).
int DnnlBf16Route(int pass, int64_t c, int64_t ho, int64_t wo) {
    const ConvGeometry geometry = {1, c, 2 * ho, 2 * wo, 1, 4, ho, wo, 2, 1};
    return bf16_route(static_cast<ConvPass>(pass), geometry);
}
const char *DnnlConvTagName(int v) { return dnnl_fmt_tag2str(v); }
const char *DnnlConvPropName(int v) { return dnnl_prop_kind2str(v); }
}
