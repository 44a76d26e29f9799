// 2-D convolution kernels for MindSpore ops.Custom (func_type "aot", CPU) that call oneDNN directly.
//
// Why: MindSpore 2.10 hands oneDNN plain NCHW tensors for its CPU convolutions; on AVX-512 CPUs oneDNN then picks a
// reference kernel, so the project caps oneDNN at AVX2. Here each convolution lets oneDNN choose its own blocked
// layouts (format "any": nChw16c data, jit:avx512_core kernels, what PyTorch uses), with reorders from and to the
// NCHW / OIHW tensors MindSpore holds. It runs on MindSpore's own libdnnl.so.3 (oneDNN 3.x, THREADPOOL runtime), so
// every stream gets a threadpool (below) or oneDNN would run single-threaded.
//
// Three kernels cover Conv2d and Conv2dTranspose, forward and backward (no bias, no dilation, one group, square
// stride s and padding p, encoded in the entry point's name: ConvFwd_s2p1 etc.):
//   ConvFwd(x NCHW, w OIHW) -> y     ConvBwdData(dy, w OIHW[, x]) -> dx     ConvBwdWeights(x, dy) -> dw
// (ConvBwdData's optional x only gives dx its shape.)
// The aot entry point signature: int f(int nparam, void **params, int *ndims, int64_t **shapes,
// const char **dtypes, void *stream, void *extra); inputs first, then the output.
#include "dnnl_api.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>
#include <vector>

namespace {

// ---------------------------------------------------------------------------------------------------------------
// A small fork-join threadpool: the caller runs share 0, one worker thread per further core runs the others.
class ThreadPool : public dnnl::threadpool_interop::threadpool_iface {
  public:
    explicit ThreadPool(int n) : n_(n < 1 ? 1 : n) {
        for (int i = 1; i < n_; ++i) workers_.emplace_back([this] { work(); });
    }
    ~ThreadPool() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stop_ = true;
            ++generation_;
        }
        cv_.notify_all();
        for (auto &t : workers_) t.join();
    }
    int get_num_threads() const override { return n_; }
    bool get_in_parallel() const override { return in_parallel_; }
    uint64_t get_flags() const override { return 0; }  // synchronous: parallel_for returns when all is done
    void wait() override {}
    void parallel_for(int n, const std::function<void(int, int)> &fn) override {
        if (n <= 0) return;
        if (n == 1 || n_ == 1 || in_parallel_) {
            for (int i = 0; i < n; ++i) fn(i, n);
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            fn_ = &fn;
            total_ = n;
            next_.store(0);
            done_.store(0);
            ++generation_;
        }
        cv_.notify_all();
        run(&fn, n);
        // Spin briefly, then block, until every index has run and no worker still holds `fn`.
        for (int spins = 0; done_.load(std::memory_order_acquire) < n && spins < 2000; ++spins) sched_yield();
        std::unique_lock<std::mutex> lock(mu_);
        fn_ = nullptr;
        done_cv_.wait(lock, [&] { return done_.load() >= n && active_ == 0; });
    }

  private:
    void run(const std::function<void(int, int)> *fn, int total) {
        in_parallel_ = true;
        for (int i; (i = next_.fetch_add(1)) < total;) {
            (*fn)(i, total);
            if (done_.fetch_add(1) + 1 == total) {
                std::lock_guard<std::mutex> lock(mu_);
                done_cv_.notify_all();
            }
        }
        in_parallel_ = false;
    }
    void work() {
        uint64_t seen = 0;
        for (;;) {
            const std::function<void(int, int)> *fn;
            int total;
            {
                std::unique_lock<std::mutex> lock(mu_);
                cv_.wait(lock, [&] { return generation_ != seen; });
                seen = generation_;
                if (stop_) return;
                if (fn_ == nullptr) continue;
                fn = fn_;
                total = total_;
                ++active_;
            }
            run(fn, total);
            std::lock_guard<std::mutex> lock(mu_);
            if (--active_ == 0) done_cv_.notify_all();
        }
    }
    int n_;
    std::vector<std::thread> workers_;
    std::mutex mu_;
    std::condition_variable cv_, done_cv_;
    uint64_t generation_ = 0;
    bool stop_ = false;
    const std::function<void(int, int)> *fn_ = nullptr;
    int total_ = 0;
    int active_ = 0;
    std::atomic<int> next_{0}, done_{0};
    static thread_local bool in_parallel_;
};
thread_local bool ThreadPool::in_parallel_ = false;

int usable_cores() {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) return CPU_COUNT(&set);
    unsigned n = std::thread::hardware_concurrency();
    return n ? static_cast<int>(n) : 1;
}

// ---------------------------------------------------------------------------------------------------------------
struct Context {
    dnnl_engine_t engine = nullptr;
    dnnl_stream_t stream = nullptr;
    std::unique_ptr<ThreadPool> pool;
    bool ok = false;
    Context() {
        pool.reset(new ThreadPool(usable_cores()));
        ok = dnnl_engine_create(&engine, dnnl_cpu, 0) == dnnl_success &&
             dnnl_threadpool_interop_stream_create(&stream, engine, pool.get()) == dnnl_success;
        if (!ok) std::fprintf(stderr, "dnnl_conv: cannot create a oneDNN engine/stream\n");
    }
};

Context &context() {
    static Context *ctx = new Context();  // never destroyed: MindSpore may call us during interpreter shutdown
    return *ctx;
}

std::mutex &exec_mutex() {
    static std::mutex mu;
    return mu;
}

// One tensor argument of a primitive: the user's plain-layout tensor and, when the primitive wants another layout,
// a buffer in that layout and the reorder between the two.
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

enum Kind { kFwd = 0, kBwdData = 1, kBwdWeights = 2 };

bool check(dnnl_status_t s, const char *what) {
    if (s != dnnl_success) std::fprintf(stderr, "dnnl_conv: %s failed (status %d)\n", what, s);
    return s == dnnl_success;
}

bool init_arg(Arg &a, int arg, bool output, const int64_t *shape, const_dnnl_memory_desc_t want, dnnl_engine_t eng) {
    a.arg = arg;
    a.output = output;
    dnnl_dims_t dims = {shape[0], shape[1], shape[2], shape[3]};
    if (!check(dnnl_memory_desc_create_with_tag(&a.user_md, 4, dims, dnnl_f32, dnnl_abcd), "memory_desc")) return false;
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

// Shapes of the convolution (x: N C H W, w: O C K K, y: N O Ho Wo) from the kernel's two inputs and output.
void conv_shapes(Kind kind, int64_t **shapes, const int64_t *&x, const int64_t *&w, const int64_t *&y) {
    if (kind == kFwd) { x = shapes[0]; w = shapes[1]; y = shapes[2]; }
    else if (kind == kBwdData) { y = shapes[0]; w = shapes[1]; x = shapes[2]; }
    else { x = shapes[0]; y = shapes[1]; w = shapes[2]; }
}

Kernel *build(Kind kind, int stride, int pad, int64_t **shapes) {
    Context &ctx = context();
    Kernel *k = new Kernel();
    if (!ctx.ok) return k;
    const int64_t *xs, *ws, *ys;
    conv_shapes(kind, shapes, xs, ws, ys);
    dnnl_dims_t xd = {xs[0], xs[1], xs[2], xs[3]}, wd = {ws[0], ws[1], ws[2], ws[3]}, yd = {ys[0], ys[1], ys[2], ys[3]};
    dnnl_dims_t strides = {stride, stride}, dil = {0, 0}, pl = {pad, pad};
    // Right/bottom padding that makes the output size exact (PyTorch/MindSpore floor the output size).
    dnnl_dims_t pr = {(ys[2] - 1) * stride + ws[2] - xs[2] - pad, (ys[3] - 1) * stride + ws[3] - xs[3] - pad};
    dnnl_memory_desc_t xa = nullptr, wa = nullptr, ya = nullptr;
    dnnl_memory_desc_create_with_tag(&xa, 4, xd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_create_with_tag(&wa, 4, wd, dnnl_f32, dnnl_format_tag_any);
    dnnl_memory_desc_create_with_tag(&ya, 4, yd, dnnl_f32, dnnl_format_tag_any);
    dnnl_primitive_desc_t fwd = nullptr, pd = nullptr;
    bool ok = check(dnnl_convolution_forward_primitive_desc_create(&fwd, ctx.engine, dnnl_forward_training,
                                                                   dnnl_convolution_direct, xa, wa, nullptr, ya,
                                                                   strides, dil, pl, pr, nullptr),
                    "convolution forward descriptor");
    if (ok && kind == kFwd) {
        pd = fwd;
        fwd = nullptr;
    } else if (ok && kind == kBwdData) {
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
        if (kind == kFwd) {
            in0 = DNNL_ARG_SRC; q0 = dnnl_query_src_md; in1 = DNNL_ARG_WEIGHTS; q1 = dnnl_query_weights_md;
            out = DNNL_ARG_DST; qo = dnnl_query_dst_md;
        } else if (kind == kBwdData) {
            in0 = DNNL_ARG_DIFF_DST; q0 = dnnl_query_diff_dst_md; in1 = DNNL_ARG_WEIGHTS; q1 = dnnl_query_weights_md;
            out = DNNL_ARG_DIFF_SRC; qo = dnnl_query_diff_src_md;
        } else {
            in0 = DNNL_ARG_SRC; q0 = dnnl_query_src_md; in1 = DNNL_ARG_DIFF_DST; q1 = dnnl_query_diff_dst_md;
            out = DNNL_ARG_DIFF_WEIGHTS; qo = dnnl_query_diff_weights_md;
        }
        ok = init_arg(k->args[0], in0, false, shapes[0], dnnl_primitive_desc_query_md(pd, q0, 0), ctx.engine) &&
             init_arg(k->args[1], in1, false, shapes[1], dnnl_primitive_desc_query_md(pd, q1, 0), ctx.engine) &&
             init_arg(k->args[2], out, true, shapes[2], dnnl_primitive_desc_query_md(pd, qo, 0), ctx.engine) &&
             check(dnnl_primitive_create(&k->prim, pd), "convolution primitive");
    }
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (fwd) dnnl_primitive_desc_destroy(fwd);
    dnnl_memory_desc_destroy(xa);
    dnnl_memory_desc_destroy(wa);
    dnnl_memory_desc_destroy(ya);
    k->ok = ok;
    return k;
}

// The blocked copies live only during one call, and calls are serialised: three buffers (one per argument slot),
// grown to the largest size seen, serve every kernel.
void *arena(int slot, size_t bytes) {
    static void *buf[3] = {nullptr, nullptr, nullptr};
    static size_t size[3] = {0, 0, 0};
    if (bytes > size[slot]) {
        std::free(buf[slot]);
        size[slot] = (bytes + 4095) / 4096 * 4096;
        buf[slot] = std::aligned_alloc(4096, size[slot]);
        if (!buf[slot]) size[slot] = 0;
    }
    return buf[slot];
}

using Key = std::tuple<int, int, int, std::vector<int64_t>>;

int run(Kind kind, int stride, int pad, int nparam, void **params, int *ndims, int64_t **shapes,
        const char **dtypes) {
    // ConvBwdData may take a third input whose only use is its shape (the input size of a strided convolution is
    // not determined by its output size): skip it.
    void *p[3];
    int nd[3];
    int64_t *sh[3];
    const char *dt[3];
    if (nparam == 4 && kind == kBwdData) {
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
    std::lock_guard<std::mutex> lock(exec_mutex());
    // oneDNN sizes a primitive's parallel work by the calling thread's "max concurrency" when the primitive is
    // created; MindSpore's own threads may have set it to 1. Use every core of our pool, then restore it.
    int previous = 0;
    dnnl_threadpool_interop_get_max_concurrency(&previous);
    dnnl_threadpool_interop_set_max_concurrency(context().pool->get_num_threads());
    struct Restore {
        int value;
        ~Restore() { dnnl_threadpool_interop_set_max_concurrency(value); }
    } restore{previous};
    static std::map<Key, std::unique_ptr<Kernel>> cache;
    auto &slot = cache[Key(kind, stride, pad, dims)];
    if (!slot) slot.reset(build(kind, stride, pad, shapes));
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
        return run(KIND, S, P, nparam, params, ndims, shapes, dtypes);                                         \
    }
DNNL_CONV_ENTRY(ConvFwd, kFwd, 2, 1)
DNNL_CONV_ENTRY(ConvBwdData, kBwdData, 2, 1)
DNNL_CONV_ENTRY(ConvBwdWeights, kBwdWeights, 2, 1)
DNNL_CONV_ENTRY(ConvFwd, kFwd, 1, 0)
DNNL_CONV_ENTRY(ConvBwdData, kBwdData, 1, 0)
DNNL_CONV_ENTRY(ConvBwdWeights, kBwdWeights, 1, 0)

// For the build check and the tests: oneDNN's version and CPU runtime (8 == THREADPOOL), and the enum values above.
int DnnlConvInfo(int *out) {
    const dnnl_version_t *v = dnnl_version();
    out[0] = v->major; out[1] = v->minor; out[2] = v->patch; out[3] = static_cast<int>(v->cpu_runtime);
    return 0;
}
const char *DnnlConvTagName(int v) { return dnnl_fmt_tag2str(v); }
const char *DnnlConvPropName(int v) { return dnnl_prop_kind2str(v); }
}
