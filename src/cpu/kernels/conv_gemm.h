// Convolutions with few output pixels per image as one matrix product (im2col + oneDNN matmul); see conv_gemm.cc.
#pragma once
#include <cstdint>

namespace dcgan_dnnl {

// One convolution: x (n, c, h, w) * weights (o, c, k, k) -> y (n, o, ho, wo), square stride and padding; the
// activations x and y lie in memory channels-last (NHWC), the weights as OIHW.
struct ConvGeometry {
    int64_t n, c, h, w, o, k, ho, wo;
    int stride, pad;
};

enum ConvPass { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

// Whether the matrix-product route is the faster one for this pass of this convolution.
bool gemm_conv_preferred(ConvPass pass, const ConvGeometry &g);

// Runs one pass; params as the entry points of dnnl_conv.cc take them (inputs, then the output):
//   forward (x, w) -> y     backward-data (dy, w) -> dx     backward-weights (x, dy) -> dw
// Returns 0, or a nonzero error code. The caller holds ExecScope.
int gemm_conv(ConvPass pass, const ConvGeometry &g, void *const *params);

// How a pass runs under --amp_level O1/O2 (a CPU with native bf16): on oneDNN's bf16 convolution kernels, or as a
// bf16 matrix product (gemm_conv_bf16), whichever was faster for this pass and layer.
enum Bf16Route { kBf16Direct = 1, kBf16Product = 2 };
Bf16Route bf16_route(ConvPass pass, const ConvGeometry &g);

// One pass as one product in bf16 (fp32 accumulation and result), for a CPU with native bf16. Same params, return
// codes and lock as gemm_conv.
int gemm_conv_bf16(ConvPass pass, const ConvGeometry &g, void *const *params);

}  // namespace dcgan_dnnl
