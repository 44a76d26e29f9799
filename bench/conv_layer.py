#!/usr/bin/env python3
"""Time one of D's convolutions as the training step runs it (the project's CPU kernels) and print one JSON line.

Three graphs: the forward pass alone; forward and weight gradient (D's first layer in D's step); forward, input and
weight gradients (in G's step). Medians over the timed calls, after warm-up. Used to choose a kernel route for one
layer (src/cpu/kernels/conv_gemm.cc, gemm_conv_preferred); set ONEDNN_MAX_CPU_ISA to compare instruction sets.

usage: python bench/conv_layer.py [--cin 1] [--cout 64] [--image_size 32] [--batch_size 128] [--calls 30]
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name, default in [("cin", 1), ("cout", 64), ("image_size", 32), ("batch_size", 128), ("calls", 30)]:
        p.add_argument("--" + name, type=int, default=default)
    a = p.parse_args()

    from src.cpu import device  # before MindSpore is imported, as train.py does
    note = device.prepare_cpu_environment("CPU", "on")
    import mindspore as ms
    import mindspore.nn as nn
    import mindspore.ops as ops
    import numpy as np
    from src.cpu.fast_layers import DnnlConv2d

    ms.set_context(mode=ms.GRAPH_MODE)

    class Summed(nn.Cell):
        def __init__(self, conv):
            super().__init__()
            self.conv = conv

        def construct(self, x):
            return self.conv(x).sum()

    class Gradients(nn.Cell):
        def __init__(self, net, of_input):
            super().__init__()
            self.net, self.weights = net, ms.ParameterTuple(net.trainable_params())
            self.grad = ops.GradOperation(get_all=of_input, get_by_list=True)

        def construct(self, x):
            return self.grad(self.net, self.weights)(x)

    conv = DnnlConv2d(a.cin, a.cout, 4, 2, 1)
    shape = (a.batch_size, a.image_size, a.image_size, a.cin)  # the kernels' layout is channels-last
    if not conv.dnnl:
        shape = (a.batch_size, a.cin, a.image_size, a.image_size)
    x = ms.Tensor(np.random.default_rng(0).random(shape, np.float32))
    graphs = {"forward_ms": conv, "forward_dw_ms": Gradients(Summed(conv), False),
              "forward_dx_dw_ms": Gradients(Summed(conv), True)}
    result = {"cin": a.cin, "cout": a.cout, "image_size": a.image_size, "batch_size": a.batch_size, "env": note,
              "kernels": bool(conv.dnnl)}
    for name, graph in graphs.items():
        def call():
            out = graph(x)
            while isinstance(out, (tuple, list)):
                out = out[0]
            out.asnumpy()  # waits for the graph
        for _ in range(3):
            call()
        times = []
        for _ in range(a.calls):
            started = time.perf_counter()
            call()
            times.append(time.perf_counter() - started)
        result[name] = round(1000 * float(np.median(times)), 2)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
