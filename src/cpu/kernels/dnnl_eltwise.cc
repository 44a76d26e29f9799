// LeakyReLU kernels for MindSpore ops.Custom (func_type "aot", CPU) on oneDNN's eltwise primitive.
//
// Why: MindSpore 2.10 computes LeakyReLU as maximum(alpha * x, x), and on CPU the gradient of Maximum runs as a
// chain of Greater / Less / Equal / Select / Div kernels: ~38 ms forward + backward for one 128x256x8x8 activation,
// about a quarter of a whole DCGAN training step (2-core Intel Xeon with AVX-512). oneDNN's jit eltwise kernel does both passes in a few ms.
//
//   LeakyReluFwd_aNN(x) -> y            y = x if x > 0 else alpha * x
//   LeakyReluBwd_aNN(y, dy) -> dx       dx = dy if y > 0 else alpha * dy (from y: for alpha > 0, y > 0 iff x > 0)
// with alpha = NN / 100 in the entry point's name (a0: ReLU, a20: the DCGAN discriminator's 0.2). Any float32
// tensor, processed as one flat array.
#include "dnnl_runtime.h"

#include <cstring>
#include <map>
#include <memory>
#include <utility>

namespace {
using namespace dcgan_dnnl;

struct Eltwise {
    dnnl_primitive_t prim = nullptr;
    dnnl_memory_t mem[3] = {nullptr, nullptr, nullptr};  // the entry point's params, in order
    int arg[3] = {0, 0, 0};
    int nargs = 0;
    bool ok = false;
};

Eltwise *build(bool backward, float alpha, int64_t n) {
    Context &ctx = context();
    Eltwise *e = new Eltwise();
    if (!ctx.ok) return e;
    dnnl_dims_t dims = {n};
    dnnl_memory_desc_t md = nullptr;
    if (!check(dnnl_memory_desc_create_with_tag(&md, 1, dims, dnnl_f32, dnnl_a), "memory_desc")) return e;
    dnnl_primitive_desc_t fwd = nullptr, bwd = nullptr;
    bool ok = check(dnnl_eltwise_forward_primitive_desc_create(&fwd, ctx.engine, dnnl_forward_training,
                                                               dnnl_eltwise_relu_use_dst_for_bwd, md, md, alpha, 0.f,
                                                               nullptr),
                    "eltwise forward descriptor");
    if (ok && backward) {
        ok = check(dnnl_eltwise_backward_primitive_desc_create(&bwd, ctx.engine, dnnl_eltwise_relu_use_dst_for_bwd, md,
                                                               md, md, alpha, 0.f, fwd, nullptr),
                   "eltwise backward descriptor");
    }
    if (ok) {
        if (backward) {
            e->nargs = 3;
            e->arg[0] = DNNL_ARG_DST; e->arg[1] = DNNL_ARG_DIFF_DST; e->arg[2] = DNNL_ARG_DIFF_SRC;
        } else {
            e->nargs = 2;
            e->arg[0] = DNNL_ARG_SRC; e->arg[1] = DNNL_ARG_DST;
        }
        for (int i = 0; ok && i < e->nargs; ++i)
            ok = check(dnnl_memory_create(&e->mem[i], md, ctx.engine, nullptr), "memory");
        ok = ok && check(dnnl_primitive_create(&e->prim, backward ? bwd : fwd), "eltwise primitive");
    }
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    if (bwd) dnnl_primitive_desc_destroy(bwd);
    dnnl_memory_desc_destroy(md);
    e->ok = ok;
    return e;
}

int run(bool backward, int alpha_percent, int nparam, void **params, int *ndims, int64_t **shapes,
        const char **dtypes) {
    if (nparam != (backward ? 3 : 2)) return 1;
    int64_t n = 1;
    for (int d = 0; d < ndims[0]; ++d) n *= shapes[0][d];
    for (int i = 0; i < nparam; ++i) {
        int64_t m = 1;
        for (int d = 0; d < ndims[i]; ++d) m *= shapes[i][d];
        if (m != n || std::strcmp(dtypes[i], "float32") != 0) return 2;
    }
    if (n == 0) return 0;
    ExecScope scope;
    static std::map<std::pair<int, int64_t>, std::unique_ptr<Eltwise>> cache;
    auto &slot = cache[{backward ? alpha_percent : -1 - alpha_percent, n}];
    if (!slot) slot.reset(build(backward, alpha_percent / 100.f, n));
    Eltwise &e = *slot;
    if (!e.ok) return 3;
    dnnl_exec_arg_t args[3];
    for (int i = 0; i < e.nargs; ++i) {
        dnnl_memory_set_data_handle(e.mem[i], params[i]);
        args[i] = {e.arg[i], e.mem[i]};
    }
    if (!check(dnnl_primitive_execute(e.prim, context().stream, e.nargs, args), "eltwise")) return 4;
    dnnl_stream_wait(context().stream);
    return 0;
}

}  // namespace

extern "C" {
#define DNNL_LEAKY_RELU_ENTRY(A)                                                                               \
    int LeakyReluFwd_a##A(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                          void *) {                                                                            \
        return run(false, A, nparam, params, ndims, shapes, dtypes);                                           \
    }                                                                                                          \
    int LeakyReluBwd_a##A(int nparam, void **params, int *ndims, int64_t **shapes, const char **dtypes, void *, \
                          void *) {                                                                            \
        return run(true, A, nparam, params, ndims, shapes, dtypes);                                            \
    }
DNNL_LEAKY_RELU_ENTRY(0)
DNNL_LEAKY_RELU_ENTRY(20)

const char *DnnlAlgName(int v) { return dnnl_alg_kind2str(v); }
}
