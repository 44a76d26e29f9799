import sys
import mindspore
from mindspore import nn
from mindspore.nn import Cell
from mindspore.ops import functional as F
#
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/ops/auto_generate')
from mindspore.ops.auto_generate.gen_ops_prim import *
from mindspore.ops.auto_generate.pyboost_inner_prim import *
from mindspore.ops.operations.manually_defined.ops_def import *
from mindspore.ops.auto_generate.gen_ops_def import reshape_op

def reshape_opt(input, shape):
    reshape_op_var = reshape_op(input, shape)
    return reshape_op_var
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/ops/auto_generate')
from mindspore.ops.auto_generate.gen_ops_def import transpose_op

def transpose_opt_1(input, dims):
    transpose_op_var = transpose_op(input, dims)
    return transpose_op_var
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')
from mindspore.nn.cell import Cell
from conv import _Conv

class _ConvOpt(_Conv, Cell):

    def __init__(self):
        Cell.__init__(self)
        for key, value in _Conv.__dict__.items():
            if not key.startswith('__'):
                setattr(_ConvOpt, key, value)
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/ops/function')
import mindspore.common.dtype as mstype
from mindspore.ops.function.array_func import scalar_to_tensor_

def scalar_to_tensor_opt(input_x, dtype=mstype.float32):
    scalar_to_tensor__var = scalar_to_tensor_(input_x, dtype)
    return scalar_to_tensor__var
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/ops/function')
from mindspore.ops.function.nn_func import _check_is_tensor
from mindspore.ops.function.nn_func import _check_value_type
from mindspore.ops.function.nn_func import cast_

def leaky_relu_opt(input, alpha=0.2):
    _check_is_tensor('input', input, 'leaky_relu')
    list_var = [float, int]
    _check_value_type('alpha', alpha, list_var, 'leaky_relu')
    select_op = maximum_
    compare_var = alpha > 1
    if compare_var:
        select_op = minimum_
    scalar_to_tensor_var = scalar_to_tensor_opt(alpha)
    alpha = cast_(scalar_to_tensor_var, input.dtype)
    mult_var = alpha * input
    select_op_var = select_op(mult_var, input)
    return select_op_var
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')
from normalization import _BatchNorm

class _BatchNormOpt(_BatchNorm, Cell):

    def __init__(self):
        Cell.__init__(self)
        for key, value in _BatchNorm.__dict__.items():
            if not key.startswith('__'):
                setattr(_BatchNormOpt, key, value)
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')
from conv import Conv2d
from mindspore.train.amp import amp_cast

class Conv2dOpt_2(Conv2d, _ConvOpt):

    def __init__(self, obj):
        _ConvOpt.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)

    def construct(self, x):
        x = amp_cast(x, mindspore.float16)
        weight_var = amp_cast(self.weight, mindspore.float16)
        output = self.conv2d(x, weight_var)
        output = amp_cast(output, mindspore.float32)
        if self.has_bias:
            output_var = amp_cast(output, mindspore.float16)
            bias_var = amp_cast(self.bias, mindspore.float16)
            output = self.bias_add(output_var, bias_var)
            output = amp_cast(output, mindspore.float32)
        return output
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')
from mindspore.ops.primitive import _primexpr
from normalization import BatchNorm2d

class BatchNorm2dOpt_3(BatchNorm2d, _BatchNormOpt):

    def __init__(self, obj):
        _BatchNormOpt.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)
        self._check_input_dim = obj.__class__._check_input_dim

    @staticmethod
    @_primexpr
    def _check_input_dim(shape, cls_name):
        dim = len(shape)
        _check_dim(dim, 4, cls_name)
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')

class Conv2dOpt_1(Conv2d, _ConvOpt):

    def __init__(self, obj):
        _ConvOpt.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)

    def construct(self, x):
        x = amp_cast(x, mindspore.float16)
        weight_var = amp_cast(self.weight, mindspore.float16)
        output = self.conv2d(x, weight_var)
        output = amp_cast(output, mindspore.float32)
        if self.has_bias:
            output_var = amp_cast(output, mindspore.float16)
            bias_var = amp_cast(self.bias, mindspore.float16)
            output = self.bias_add(output_var, bias_var)
            output = amp_cast(output, mindspore.float32)
        return output
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')
from activation import LeakyReLU

class LeakyReLUOpt(LeakyReLU, Cell):

    def __init__(self, obj):
        Cell.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)

    def construct(self, x):
        out = leaky_relu_opt(x, self.alpha)
        return out
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')

class Conv2dOpt(Conv2d, _ConvOpt):

    def __init__(self, obj):
        _ConvOpt.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)

    def construct(self, x):
        x = amp_cast(x, mindspore.float16)
        weight_var = amp_cast(self.weight, mindspore.float16)
        output = self.conv2d(x, weight_var)
        output = amp_cast(output, mindspore.float32)
        if self.has_bias:
            output_var = amp_cast(output, mindspore.float16)
            bias_var = amp_cast(self.bias, mindspore.float16)
            output = self.bias_add(output_var, bias_var)
            output = amp_cast(output, mindspore.float32)
        return output
#
sys.path.insert(0, '/root/.cache/dcgan-ci/venv-c73460fdcce2148d/lib/python3.11/site-packages/mindspore/nn/layer')

class Conv2dOpt_3(Conv2d, _ConvOpt):

    def __init__(self, obj):
        _ConvOpt.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)

    def construct(self, x):
        x = amp_cast(x, mindspore.float16)
        weight_var = amp_cast(self.weight, mindspore.float16)
        output = self.conv2d(x, weight_var)
        output = amp_cast(output, mindspore.float32)
        if self.has_bias:
            output_var = amp_cast(output, mindspore.float16)
            bias_var = amp_cast(self.bias, mindspore.float16)
            output = self.bias_add(output_var, bias_var)
            output = amp_cast(output, mindspore.float32)
        return output
#
sys.path.insert(0, '/work/main/src')
import mindspore.nn as nn
import mindspore.ops as ops
from src.cpu.fast_layers import TO_CHANNELS_FIRST, TO_CHANNELS_LAST
from discriminator import Discriminator

class DiscriminatorOpt(Discriminator, nn.Cell):

    def __init__(self, obj):
        nn.Cell.__init__(self)
        for key, value in obj.__dict__.items():
            setattr(self, key, value)
        self.blocks[0][0] = Conv2dOpt(self.blocks[0][0])
        self.blocks[0][1] = LeakyReLUOpt(self.blocks[0][1])
        self.blocks[1][0] = Conv2dOpt_1(self.blocks[1][0])
        self.blocks[1][1] = BatchNorm2dOpt_3(self.blocks[1][1])
        self.blocks[1][2] = LeakyReLUOpt(self.blocks[1][2])
        self.blocks[2][0] = Conv2dOpt_2(self.blocks[2][0])
        self.blocks[2][1] = BatchNorm2dOpt_3(self.blocks[2][1])
        self.blocks[2][2] = LeakyReLUOpt(self.blocks[2][2])
        self.head = Conv2dOpt_3(self.head)

    def construct(self, x):
        if self.channels_last:
            x = transpose_opt_1(x, TO_CHANNELS_LAST)
        self_blocks = self.blocks
        for block in self_blocks:
            x = block(x)
        usub_var = -1
        tuple_var = (usub_var,)
        head_var = self.head(x)
        reshape_var = reshape_opt(head_var, tuple_var)
        return reshape_var

    def features(self, x):
        """The activations of every conv stage, NCHW (used by verify.py's feature extractor)."""
        if self.channels_last:
            x = ops.transpose(x, TO_CHANNELS_LAST)
        outputs = []
        for block in self.blocks:
            x = block(x)
            outputs.append(ops.transpose(x, TO_CHANNELS_FIRST) if self.channels_last else x)
        return outputs
#