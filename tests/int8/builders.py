"""Small int8 .tflite models built in the tests with tflite-micro's model editor (no TensorFlow).

Weights, biases and quantisation parameters are random but sized so that activations use
most of the int8 range: saturated layers would hide arithmetic differences."""

from __future__ import annotations

import math

import numpy as np


def _editor():
    from tflite_micro.tensorflow.lite.micro.compression import model_editor as me
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb
    return me, fb


class Builder:
    """A one-subgraph model, built layer by layer; each layer returns its output tensor."""

    def __init__(self, seed: int):
        self.me, self.fb = _editor()
        self.rng = np.random.default_rng(seed)
        self.model = self.me.Model()
        self.sg = self.model.add_subgraph()
        self.n = 0

    def _name(self, what):
        self.n += 1
        return f"{what}{self.n}"

    def act(self, shape, scale, zp, dtype="INT8"):
        q = self.me.Quantization(scales=float(scale), zero_points=int(zp)) if dtype == "INT8" else None
        return self.sg.add_tensor(shape=tuple(shape), dtype=getattr(self.fb.TensorType, dtype),
                                  quantization=q, name=self._name("act"))

    def const(self, array, dtype, scales=None, axis=None):
        q = None
        if scales is not None:
            q = self.me.Quantization(scales=[float(s) for s in scales] if len(scales) > 1 else float(scales[0]),
                                     zero_points=[0] * len(scales) if len(scales) > 1 else 0, axis=axis)
        return self.sg.add_tensor(shape=array.shape, dtype=getattr(self.fb.TensorType, dtype),
                                  data=np.ascontiguousarray(array), quantization=q,
                                  name=self._name("const"))

    def op(self, name, inputs, outputs, options=None, options_name=None):
        op = self.sg.add_operator(opcode=getattr(self.fb.BuiltinOperator, name),
                                  inputs=inputs, outputs=outputs)
        if options is not None:
            op._fb.builtinOptionsType = getattr(self.fb.BuiltinOptions, options_name)
            op._fb.builtinOptions = options
        return outputs[0]

    def options(self, cls, **fields):
        o = getattr(self.fb, cls + "T")()
        for k, v in fields.items():
            setattr(o, k, v)
        return o

    # ---------------------------------------------------------------- layers
    def _weights(self, shape, channels, per_channel, channel_axis):
        w = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        scales = (self.rng.uniform(0.002, 0.02, channels) if per_channel
                  else [self.rng.uniform(0.002, 0.02)])
        return w, list(scales)

    def _out_scale(self, x, w_scales, fan_in):
        # typical |acc| ~ sqrt(fan_in) * 64 * 64 units of in_scale * w_scale
        s = x.quantization.scales * float(np.mean(w_scales)) * math.sqrt(fan_in) * 64 * 64 / 60
        return s * self.rng.uniform(0.7, 1.3)

    def _bias(self, n, x, w_scales):
        return (self.rng.integers(-3000, 3000, n)).astype(np.int32)

    def fully_connected(self, x, n_out, per_channel=False, activation=0, out_zp=None):
        n_in = x.shape[-1]
        w, ws = self._weights((n_out, n_in), n_out, per_channel, 0)
        out = self.act((x.shape[0], n_out), self._out_scale(x, ws, n_in),
                       self.rng.integers(-20, 20) if out_zp is None else out_zp)
        self.op("FULLY_CONNECTED",
                [x, self.const(w, "INT8", ws, 0), self.const(self._bias(n_out, x, ws), "INT32",
                                                            [x.quantization.scales * s for s in ws], 0)],
                [out], self.options("FullyConnectedOptions", fusedActivationFunction=activation),
                "FullyConnectedOptions")
        return out

    def conv_2d(self, x, oc, k, stride=1, padding=0, activation=0, per_channel=True, dilation=1):
        _, h, wd, ic = x.shape
        w, ws = self._weights((oc, k, k, ic), oc, per_channel, 0)
        eff = (k - 1) * dilation + 1
        oh = (h + stride - 1) // stride if padding == 0 else (h - eff + stride) // stride
        ow = (wd + stride - 1) // stride if padding == 0 else (wd - eff + stride) // stride
        out = self.act((1, oh, ow, oc), self._out_scale(x, ws, k * k * ic), self.rng.integers(-20, 20))
        self.op("CONV_2D",
                [x, self.const(w, "INT8", ws, 0), self.const(self._bias(oc, x, ws), "INT32",
                                                            [x.quantization.scales * s for s in ws], 0)],
                [out], self.options("Conv2DOptions", padding=padding, strideW=stride, strideH=stride,
                                    fusedActivationFunction=activation, dilationWFactor=dilation,
                                    dilationHFactor=dilation), "Conv2DOptions")
        return out

    def depthwise_conv_2d(self, x, k, multiplier=1, stride=1, padding=0, activation=0):
        _, h, wd, ic = x.shape
        oc = ic * multiplier
        w, ws = self._weights((1, k, k, oc), oc, True, 3)
        oh = (h + stride - 1) // stride if padding == 0 else (h - k + stride) // stride
        ow = (wd + stride - 1) // stride if padding == 0 else (wd - k + stride) // stride
        out = self.act((1, oh, ow, oc), self._out_scale(x, ws, k * k), self.rng.integers(-20, 20))
        self.op("DEPTHWISE_CONV_2D",
                [x, self.const(w, "INT8", ws, 3), self.const(self._bias(oc, x, ws), "INT32",
                                                            [x.quantization.scales * s for s in ws], 0)],
                [out], self.options("DepthwiseConv2DOptions", padding=padding, strideW=stride,
                                    strideH=stride, depthMultiplier=multiplier,
                                    fusedActivationFunction=activation, dilationWFactor=1,
                                    dilationHFactor=1), "DepthwiseConv2DOptions")
        return out

    def pool(self, name, x, f, stride, padding=0, activation=0):
        _, h, wd, c = x.shape
        oh = (h + stride - 1) // stride if padding == 0 else (h - f + stride) // stride
        ow = (wd + stride - 1) // stride if padding == 0 else (wd - f + stride) // stride
        out = self.act((1, oh, ow, c), x.quantization.scales, x.quantization.zero_points)
        self.op(name, [x], [out], self.options("Pool2DOptions", padding=padding, strideW=stride,
                                               strideH=stride, filterWidth=f, filterHeight=f,
                                               fusedActivationFunction=activation),
                "Pool2DOptions")
        return out

    def reshape(self, x, shape):
        out = self.act(shape, x.quantization.scales, x.quantization.zero_points)
        shape_t = self.const(np.array(shape, np.int32), "INT32")
        return self.op("RESHAPE", [x, shape_t], [out],
                       self.options("ReshapeOptions", newShape=list(shape)), "ReshapeOptions")

    def flatten_keras_style(self, x):
        """SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE, as TF 2.x converts Keras' Flatten."""
        shape = self.sg.add_tensor(shape=(4,), dtype=self.fb.TensorType.INT32, name=self._name("shape"))
        self.op("SHAPE", [x], [shape], self.options("ShapeOptions", outType=self.fb.TensorType.INT32),
                "ShapeOptions")
        batch = self.sg.add_tensor(shape=(), dtype=self.fb.TensorType.INT32, name=self._name("batch"))
        one = lambda v: self.const(np.array([v], np.int32), "INT32")  # noqa: E731
        self.op("STRIDED_SLICE", [shape, one(0), one(1), one(1)], [batch],
                self.options("StridedSliceOptions", shrinkAxisMask=1), "StridedSliceOptions")
        packed = self.sg.add_tensor(shape=(2,), dtype=self.fb.TensorType.INT32, name=self._name("packed"))
        self.op("PACK", [batch, self.const(np.array(-1, np.int32), "INT32")], [packed],
                self.options("PackOptions", valuesCount=2, axis=0), "PackOptions")
        out = self.act((1, int(np.prod(x.shape[1:]))), x.quantization.scales, x.quantization.zero_points)
        return self.op("RESHAPE", [x, packed], [out])

    def softmax(self, x, beta=1.0):
        out = self.act(x.shape, 1 / 256, -128)
        return self.op("SOFTMAX", [x], [out], self.options("SoftmaxOptions", beta=beta), "SoftmaxOptions")

    def logistic(self, x):
        return self.op("LOGISTIC", [x], [self.act(x.shape, 1 / 256, -128)])

    def add(self, a, b, activation=0):
        s = max(a.quantization.scales, b.quantization.scales) * self.rng.uniform(1.2, 2.0)
        out = self.act(a.shape, s, self.rng.integers(-10, 10))
        return self.op("ADD", [a, b], [out], self.options("AddOptions", fusedActivationFunction=activation),
                       "AddOptions")

    def mean(self, x, axes, keep_dims=True):
        shape = [1 if (i in axes and keep_dims) else d for i, d in enumerate(x.shape)
                 if keep_dims or i not in axes]
        out = self.act(shape, x.quantization.scales * self.rng.uniform(0.5, 0.9), self.rng.integers(-10, 10))
        return self.op("MEAN", [x, self.const(np.array(axes, np.int32), "INT32")], [out],
                       self.options("ReducerOptions", keepDims=keep_dims), "ReducerOptions")

    def quantize(self, x, scale, zp):
        return self.op("QUANTIZE", [x], [self.act(x.shape, scale, zp)])

    def dequantize(self, x):
        return self.op("DEQUANTIZE", [x], [self.act(x.shape, 0, 0, "FLOAT32")])

    def build(self, inp, out) -> bytes:
        self.sg.inputs = [inp]
        self.sg.outputs = [out]
        return bytes(self.model.build())


# ------------------------------------------------------------------ the test models

def mlp(seed=1) -> bytes:
    """int8 in -> FC+RELU (per-tensor) -> FC (per-channel) -> SOFTMAX, int8 out."""
    b = Builder(seed)
    x = b.act((1, 24), 0.05, 3)
    h = b.fully_connected(x, 12, activation=1)
    h = b.fully_connected(h, 6, per_channel=True)
    return b.build(x, b.softmax(h, beta=0.08))


def cnn(seed=2) -> bytes:
    """float in -> QUANTIZE -> CONV (SAME, per-channel, RELU6) -> DEPTHWISE (x2, stride 2)
    -> MAX_POOL -> AVERAGE_POOL -> Keras-style flatten -> FC -> SOFTMAX -> DEQUANTIZE."""
    b = Builder(seed)
    x = b.act((1, 8, 8, 2), 0, 0, "FLOAT32")
    q = b.quantize(x, 0.02, -5)
    h = b.conv_2d(q, 4, 3, padding=0, activation=3)
    h = b.depthwise_conv_2d(h, 3, multiplier=2, stride=2, padding=0, activation=1)
    h = b.pool("MAX_POOL_2D", h, 2, 1, padding=0)
    h = b.pool("AVERAGE_POOL_2D", h, 3, 2, padding=0)
    h = b.conv_2d(h, 6, 2, padding=1, per_channel=False)  # VALID, per-tensor
    h = b.flatten_keras_style(h)
    h = b.fully_connected(h, 5, per_channel=True)
    return b.build(x, b.dequantize(b.softmax(h, beta=0.1)))


def residual(seed=3) -> bytes:
    """int8 in -> 1x1 CONV -> ADD(input, conv) -> MEAN over H, W -> LOGISTIC."""
    b = Builder(seed)
    x = b.act((1, 5, 5, 3), 0.04, -7)
    h = b.conv_2d(x, 3, 1, padding=1, activation=1)
    s = b.add(x, h, activation=0)
    m = b.mean(s, [1, 2], keep_dims=True)
    return b.build(x, b.logistic(m))


def with_tanh(seed=4) -> bytes:
    """An op the generator does not implement (TANH)."""
    b = Builder(seed)
    x = b.act((1, 8), 0.05, 0)
    h = b.fully_connected(x, 4)
    return b.build(x, b.op("TANH", [h], [b.act((1, 4), 1 / 128, 0)]))


def int16_activations(seed=5) -> bytes:
    """A type the generator does not implement: int16 activations."""
    b = Builder(seed)
    x = b.act((1, 8), 0.05, 0, "INT16")
    x.quantization = b.me.Quantization(scales=0.001, zero_points=0)
    out = b.act((1, 8), 1 / 32768, 0, "INT16")
    out.quantization = b.me.Quantization(scales=1 / 32768, zero_points=0)
    return b.build(x, b.op("LOGISTIC", [x], [out]))
