// The few declarations of oneDNN's (3.x) stable C API that the kernels use, so the custom op builds against the
// libdnnl.so.3 that MindSpore ships (which comes without headers) with no header package installed.
//
// The function signatures, enum values and the threadpool interface below restate those of oneDNN's public headers
// (oneapi/dnnl/dnnl.h, dnnl_types.h, dnnl_threadpool.h, dnnl_threadpool_iface.hpp; Copyright Intel Corporation,
// Apache License 2.0, https://www.apache.org/licenses/LICENSE-2.0). oneDNN keeps its C API and these values stable
// within a major version; self_check.py checks them against the loaded library (dnnl_version and dnnl_*2str) and each
// kernel against numpy before a new build is used, and tests/test_cpu_kernels.py every result against MindSpore's own
// layers.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

extern "C" {
typedef int dnnl_status_t;  // dnnl_success == 0
typedef struct dnnl_engine *dnnl_engine_t;
typedef struct dnnl_stream *dnnl_stream_t;
typedef struct dnnl_memory_desc *dnnl_memory_desc_t;
typedef const struct dnnl_memory_desc *const_dnnl_memory_desc_t;
typedef struct dnnl_memory *dnnl_memory_t;
typedef struct dnnl_primitive_desc *dnnl_primitive_desc_t;
typedef const struct dnnl_primitive_desc *const_dnnl_primitive_desc_t;
typedef struct dnnl_primitive *dnnl_primitive_t;
typedef struct dnnl_primitive_attr *dnnl_primitive_attr_t;
typedef const struct dnnl_primitive_attr *const_dnnl_primitive_attr_t;
typedef int64_t dnnl_dims_t[12];
typedef struct { int arg; dnnl_memory_t memory; } dnnl_exec_arg_t;
typedef struct { int major, minor, patch; const char *hash; unsigned cpu_runtime, gpu_runtime; } dnnl_version_t;

enum {
    dnnl_success = 0,
    dnnl_bf16 = 2,
    dnnl_f32 = 3,
    dnnl_format_tag_any = 1,
    dnnl_a = 2,     // a dense 1-D tensor (any tensor, flattened)
    dnnl_abcd = 5,  // nchw for data, oihw for convolution weights
    dnnl_acdb = 22,  // nhwc for data
    dnnl_forward_training = 64,
    dnnl_convolution_direct = 1,
    dnnl_eltwise_relu_use_dst_for_bwd = 0x100,  // ReLU with a negative slope (alpha); its gradient from y
    dnnl_cpu = 1,
    dnnl_query_src_md = 129,
    dnnl_query_diff_src_md = 130,
    dnnl_query_weights_md = 131,
    dnnl_query_diff_weights_md = 132,
    dnnl_query_dst_md = 133,
    dnnl_query_diff_dst_md = 134,
    DNNL_ARG_SRC = 1,
    DNNL_ARG_DST = 17,
    DNNL_ARG_WEIGHTS = 33,
    DNNL_ARG_DIFF_SRC = 129,
    DNNL_ARG_DIFF_DST = 145,
    DNNL_ARG_DIFF_WEIGHTS = 161,
};

const dnnl_version_t *dnnl_version(void);
// The instruction set oneDNN's kernels use (a dnnl_cpu_isa_t bit mask; ONEDNN_MAX_CPU_ISA lowers it). Only used to
// choose a route for speed, so a wrong bit would cost time, never correctness.
int dnnl_get_effective_cpu_isa(void);
enum { DNNL_CPU_ISA_AVX512_CORE_BIT = 0x20 };
// dnnl_cpu_isa_avx512_core_bf16 = 0xe7 = avx512_core_vnni (0x67) | 0x80; the AMX instruction sets include the bit.
enum { DNNL_CPU_ISA_BF16_BIT = 0x80 };  // dnnl_cpu_isa_avx512_core = 0x27 = avx2 (0x7) | 0x20
// dnnl_cpu_isa_avx512_core_amx (0xfef) = avx10_1_512 (0x1ef) | the AMX tile, int8 and bf16 bits.
enum { DNNL_CPU_ISA_AMX_BITS = 0xE00 };
const char *dnnl_alg_kind2str(int v);
const char *dnnl_fmt_tag2str(int v);
const char *dnnl_prop_kind2str(int v);
dnnl_status_t dnnl_engine_create(dnnl_engine_t *engine, int kind, size_t index);
dnnl_status_t dnnl_threadpool_interop_stream_create(dnnl_stream_t *stream, dnnl_engine_t engine, void *threadpool);
dnnl_status_t dnnl_threadpool_interop_set_max_concurrency(int max_concurrency);
dnnl_status_t dnnl_threadpool_interop_get_max_concurrency(int *max_concurrency);
dnnl_status_t dnnl_stream_wait(dnnl_stream_t stream);
dnnl_status_t dnnl_memory_desc_create_with_tag(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                                               int data_type, int tag);
dnnl_status_t dnnl_memory_desc_create_with_strides(dnnl_memory_desc_t *md, int ndims, const dnnl_dims_t dims,
                                                   int data_type, const dnnl_dims_t strides);
dnnl_status_t dnnl_memory_desc_destroy(dnnl_memory_desc_t md);
size_t dnnl_memory_desc_get_size(const_dnnl_memory_desc_t md);
int dnnl_memory_desc_equal(const_dnnl_memory_desc_t lhs, const_dnnl_memory_desc_t rhs);
dnnl_status_t dnnl_memory_create(dnnl_memory_t *memory, const_dnnl_memory_desc_t md, dnnl_engine_t engine,
                                 void *handle);
dnnl_status_t dnnl_memory_set_data_handle(dnnl_memory_t memory, void *handle);
dnnl_status_t dnnl_convolution_forward_primitive_desc_create(
    dnnl_primitive_desc_t *pd, dnnl_engine_t engine, int prop_kind, int alg_kind,
    const_dnnl_memory_desc_t src_desc, const_dnnl_memory_desc_t weights_desc, const_dnnl_memory_desc_t bias_desc,
    const_dnnl_memory_desc_t dst_desc, const dnnl_dims_t strides, const dnnl_dims_t dilates,
    const dnnl_dims_t padding_l, const dnnl_dims_t padding_r, const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_convolution_backward_data_primitive_desc_create(
    dnnl_primitive_desc_t *pd, dnnl_engine_t engine, int alg_kind, const_dnnl_memory_desc_t diff_src_desc,
    const_dnnl_memory_desc_t weights_desc, const_dnnl_memory_desc_t diff_dst_desc, const dnnl_dims_t strides,
    const dnnl_dims_t dilates, const dnnl_dims_t padding_l, const dnnl_dims_t padding_r,
    const_dnnl_primitive_desc_t hint_fwd_pd, const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_convolution_backward_weights_primitive_desc_create(
    dnnl_primitive_desc_t *pd, dnnl_engine_t engine, int alg_kind, const_dnnl_memory_desc_t src_desc,
    const_dnnl_memory_desc_t diff_weights_desc, const_dnnl_memory_desc_t diff_bias_desc,
    const_dnnl_memory_desc_t diff_dst_desc, const dnnl_dims_t strides, const dnnl_dims_t dilates,
    const dnnl_dims_t padding_l, const dnnl_dims_t padding_r, const_dnnl_primitive_desc_t hint_fwd_pd,
    const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_eltwise_forward_primitive_desc_create(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                                       int prop_kind, int alg_kind, const_dnnl_memory_desc_t src_desc,
                                                       const_dnnl_memory_desc_t dst_desc, float alpha, float beta,
                                                       const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_eltwise_backward_primitive_desc_create(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                                        int alg_kind, const_dnnl_memory_desc_t diff_src_desc,
                                                        const_dnnl_memory_desc_t diff_dst_desc,
                                                        const_dnnl_memory_desc_t data_desc, float alpha, float beta,
                                                        const_dnnl_primitive_desc_t hint_fwd_pd,
                                                        const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_matmul_primitive_desc_create(dnnl_primitive_desc_t *pd, dnnl_engine_t engine,
                                               const_dnnl_memory_desc_t src_desc,
                                               const_dnnl_memory_desc_t weights_desc,
                                               const_dnnl_memory_desc_t bias_desc, const_dnnl_memory_desc_t dst_desc,
                                               const_dnnl_primitive_attr_t attr);
dnnl_status_t dnnl_reorder_primitive_desc_create(dnnl_primitive_desc_t *pd, const_dnnl_memory_desc_t src_desc,
                                                 dnnl_engine_t src_engine, const_dnnl_memory_desc_t dst_desc,
                                                 dnnl_engine_t dst_engine, const_dnnl_primitive_attr_t attr);
const_dnnl_memory_desc_t dnnl_primitive_desc_query_md(const_dnnl_primitive_desc_t pd, int what, int index);
dnnl_status_t dnnl_primitive_desc_destroy(dnnl_primitive_desc_t pd);
dnnl_status_t dnnl_primitive_create(dnnl_primitive_t *primitive, const_dnnl_primitive_desc_t pd);
dnnl_status_t dnnl_primitive_execute(const dnnl_primitive_t primitive, dnnl_stream_t stream, int nargs,
                                     const dnnl_exec_arg_t *args);
}

namespace dnnl {
namespace threadpool_interop {
// The threadpool a THREADPOOL-runtime oneDNN runs its parallel loops on (same virtual table as oneDNN's).
struct threadpool_iface {
    virtual int get_num_threads() const = 0;
    virtual bool get_in_parallel() const = 0;
    virtual void parallel_for(int n, const std::function<void(int, int)> &fn) = 0;
    virtual uint64_t get_flags() const = 0;
    virtual void wait() = 0;
    static constexpr uint64_t ASYNCHRONOUS = 1;
    virtual ~threadpool_iface() = default;
};
}  // namespace threadpool_interop
}  // namespace dnnl
