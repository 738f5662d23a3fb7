"""Lower a parsed TFLite graph to a list of kernel calls with every parameter resolved.

Checks each operator against what the C kernels implement, folds static shape arithmetic
(Keras' Flatten emits SHAPE -> STRIDED_SLICE -> PACK -> RESHAPE), and precomputes what the
kernels need: fixed-point multipliers, clamp bounds, and biases with the input zero point
folded in (bias + input_offset * sum(weights)), which keeps the inner loop an int8 x int8
multiply-accumulate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import HarnessError
from harness.int8 import ops
from harness.int8.flatbuffer import Graph, Operator, Tensor

# Operators the C kernels implement (shape-only ops are folded at generation time).
SUPPORTED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D",
                 "AVERAGE_POOL_2D", "RESHAPE", "SOFTMAX", "QUANTIZE", "DEQUANTIZE", "ADD",
                 "MEAN", "LOGISTIC")
FOLDED_OPS = ("SHAPE", "STRIDED_SLICE", "PACK")
ACTIVATIONS = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6"}


class UnsupportedModel(HarnessError):
    """The model uses an operator, type or shape the int8 generator does not implement."""


def _supported_list() -> str:
    return (f"supported operators: {', '.join(SUPPORTED_OPS)} (plus {', '.join(FOLDED_OPS)} "
            "when they only compute static shapes); int8 activations and weights, int32 biases, "
            "float32 only at a QUANTIZE/DEQUANTIZE boundary")


def refuse(op: Operator | None, what: str) -> UnsupportedModel:
    where = f"operator {op.index} ({op.name}): " if op is not None else ""
    return UnsupportedModel(f"tinyhil-int8 cannot generate C for this model: {where}{what}; "
                            f"{_supported_list()}")


@dataclass
class Const:
    """A constant array the generated C keeps in flash."""
    name: str
    ctype: str         # "int8_t", "int32_t"
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * (1 if self.ctype == "int8_t" else 4)


@dataclass
class Layer:
    index: int              # position among the generated layers
    op_index: int           # operator index in the .tflite model
    op: str                 # TFLite operator name
    kernel: str             # C function in tinyhil_int8.c, or "" for an alias (RESHAPE)
    reads: list[int]        # tensor indices the call reads (its first arguments)
    writes: list[int]       # tensor indices it writes (the arguments after those)
    params: str = ""        # C type of the parameter struct passed last, in flash
    fields: dict = field(default_factory=dict)  # struct field -> int | float | Const | list
    macs: int = 0


@dataclass
class Lowered:
    graph: Graph
    layers: list[Layer]
    consts: list[Const]
    aliases: dict[int, int]     # tensor -> tensor whose memory it shares (RESHAPE)
    input: Tensor
    output: Tensor


def _activation(op: Operator) -> str:
    code = getattr(op.options, "fusedActivationFunction", 0) or 0
    if code not in ACTIVATIONS:
        raise refuse(op, f"fused activation code {code} (TANH/SIGN_BIT) is not supported; "
                         "fused NONE, RELU, RELU_N1_TO_1 and RELU6 are")
    return ACTIVATIONS[code]


def _wrap32(x: np.ndarray) -> np.ndarray:
    """int64 -> int32 with two's-complement wrap-around, as the C accumulator does."""
    return ((np.asarray(x, np.int64) + 2**31) % 2**32 - 2**31).astype(np.int32)


class _Lowerer:
    def __init__(self, graph: Graph, name: str):
        self.g, self.name = graph, name
        self.layers: list[Layer] = []
        self.consts: list[Const] = []
        self.aliases: dict[int, int] = {}
        self.folded: dict[int, np.ndarray] = {}   # tensor -> value computed at generation time

    # ------------------------------------------------------------------ helpers
    def t(self, i: int) -> Tensor:
        return self.g.tensors[i]

    def const(self, op, suffix, ctype, values) -> Const:
        c = Const(f"{self.name}_op{op.index}_{suffix}", ctype,
                  np.ascontiguousarray(values, np.int8 if ctype == "int8_t" else np.int32).ravel())
        self.consts.append(c)
        return c

    def activation_tensor(self, op, i, dtype="INT8") -> Tensor:
        t = self.t(i)
        if t.data is not None:
            raise refuse(op, f"tensor {t.name!r} is a constant where an activation is expected")
        if t.dtype != dtype:
            raise refuse(op, f"tensor {t.name!r} has type {t.dtype}, expected {dtype}")
        if dtype == "INT8" and (len(t.scales) != 1 or len(t.zero_points) != 1):
            raise refuse(op, f"int8 tensor {t.name!r} needs one scale and zero point "
                             f"(has {len(t.scales)} scales)")
        return t

    def weights(self, op, i, dims: int) -> Tensor:
        t = self.t(i)
        if t.data is None or t.dtype != "INT8" or len(t.shape) != dims:
            raise refuse(op, f"weights {t.name!r} must be a constant int8 tensor of rank {dims} "
                             f"(got {t.dtype}, shape {t.shape}, constant={t.data is not None})")
        if any(z != 0 for z in t.zero_points):
            raise refuse(op, f"weights {t.name!r} have a non-zero zero point (TFLite int8 "
                             "weights are symmetric)")
        return t

    def bias(self, op, i, n) -> np.ndarray:
        if i < 0:
            return np.zeros(n, np.int64)
        t = self.t(i)
        if t.data is None or t.dtype != "INT32" or t.size != n:
            raise refuse(op, f"bias {t.name!r} must be a constant int32 tensor of {n} values "
                             f"(got {t.dtype}, shape {t.shape})")
        return t.data.astype(np.int64).ravel()

    def out_params(self, op, inp, w, out, channels):
        mult, shift = ops.conv_multipliers(inp.scale, w.scales, out.scale, channels)
        if len(w.scales) not in (1, channels):
            raise refuse(op, f"weights have {len(w.scales)} scales for {channels} channels")
        amin, amax = ops.activation_range(_activation(op), out.scale, out.zero_point)
        return dict(multiplier=self.const(op, "mult", "int32_t", mult),
                    shift=self.const(op, "shift", "int8_t", shift),
                    output_zero_point=out.zero_point, act_min=amin, act_max=amax)

    def nhwc(self, op, t) -> tuple[int, int, int]:
        if len(t.shape) != 4 or t.shape[0] != 1:
            raise refuse(op, f"tensor {t.name!r} has shape {t.shape}; 4-D NHWC with batch 1 is "
                             "supported")
        return t.shape[1], t.shape[2], t.shape[3]

    def add(self, op, kernel, reads, writes, params="", fields=None, macs=0):
        for t in reads + writes:
            if self.t(t).size > 65535:
                raise refuse(op, f"tensor {self.t(t).name!r} has {self.t(t).size} elements; "
                                 "at most 65535 are supported")
        self.layers.append(Layer(len(self.layers), op.index, op.name, kernel, reads, writes,
                                 params, fields or {}, macs))

    # ------------------------------------------------------------------ operators
    def lower(self) -> Lowered:
        g = self.g
        if len(g.inputs) != 1 or len(g.outputs) != 1:
            raise refuse(None, f"the model has {len(g.inputs)} inputs and {len(g.outputs)} "
                               "outputs; the model ABI takes exactly one of each")
        for op in g.operators:
            if self.try_fold(op):
                continue
            handler = getattr(self, "op_" + op.name.lower(), None)
            if handler is None or op.name not in SUPPORTED_OPS:
                raise refuse(op, f"operator {op.name} is not supported")
            handler(op)
        self.check_folded_uses()
        inp, out = self.t(g.inputs[0]), self.t(g.outputs[0])
        for t in (inp, out):
            if t.dtype not in ("INT8", "FLOAT32"):
                raise refuse(None, f"model {'input' if t is inp else 'output'} {t.name!r} has "
                                   f"type {t.dtype}; int8 or float32 is supported")
        return Lowered(g, self.layers, self.consts, self.aliases, inp, out)

    def try_fold(self, op) -> bool:
        """Evaluate shape arithmetic whose inputs are known now; True if op was folded."""
        if op.name not in FOLDED_OPS:
            return False
        if op.name == "SHAPE":
            value = np.array(self.t(op.inputs[0]).shape, np.int32)
        else:
            vals = [self.folded.get(i, self.t(i).data) for i in op.inputs]
            if any(v is None for v in vals):
                raise refuse(op, f"{op.name} on run-time data is not supported (only static "
                                 "shape arithmetic is folded)")
            if op.name == "PACK":
                value = np.stack(vals, axis=op.options.axis)
            else:
                value = _strided_slice(op, *vals)
        self.folded[op.outputs[0]] = value
        return True

    def check_folded_uses(self):
        for layer in self.layers:
            for i in layer.reads:
                if i in self.folded:
                    raise refuse(self.g.operators[layer.op_index],
                                 f"it reads {self.t(i).name!r}, a shape computed at "
                                 "generation time, as data")

    def op_fully_connected(self, op):
        inp = self.activation_tensor(op, op.inputs[0])
        out = self.activation_tensor(op, op.outputs[0])
        w = self.weights(op, op.inputs[1], 2)
        n_out, n_in = w.shape
        if getattr(op.options, "weightsFormat", 0):
            raise refuse(op, "shuffled weights format is not supported")
        if inp.size % n_in:
            raise refuse(op, f"input of {inp.size} values is not a multiple of {n_in}")
        batches = inp.size // n_in
        bias = self.bias(op, op.inputs[2] if len(op.inputs) > 2 else -1, n_out)
        folded = _wrap32(bias - inp.zero_point * w.data.astype(np.int64).sum(axis=1))
        params = self.out_params(op, inp, w, out, n_out)
        self.add(op, "tinyhil_int8_fully_connected", [inp.index], [out.index],
                 "tinyhil_int8_fc_t",
                 dict(weights=self.const(op, "w", "int8_t", w.data),
                      bias=self.const(op, "bias", "int32_t", folded), **params,
                      batches=batches, in_features=n_in, out_features=n_out),
                 macs=batches * n_in * n_out)

    def _conv_geometry(self, op, inp, out, kh, kw):
        o = op.options
        pad = "SAME" if o.padding == 0 else "VALID"
        dh, dw = (o.dilationHFactor or 1), (o.dilationWFactor or 1)
        ih, iw, _ = self.nhwc(op, inp)
        oh, ph = ops.padding(pad, ih, kh, o.strideH, dh)
        ow, pw = ops.padding(pad, iw, kw, o.strideW, dw)
        if (oh, ow) != self.nhwc(op, out)[:2]:
            raise refuse(op, f"output shape {out.shape} does not follow from the input, "
                             f"filter and {pad} padding")
        return dict(in_h=ih, in_w=iw, out_h=oh, out_w=ow, k_h=kh, k_w=kw, stride_h=o.strideH,
                    stride_w=o.strideW, dil_h=dh, dil_w=dw, pad_h=ph, pad_w=pw)

    def op_conv_2d(self, op):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        w = self.weights(op, op.inputs[1], 4)
        oc, kh, kw, ic = w.shape
        if ic != self.nhwc(op, inp)[2] or oc != self.nhwc(op, out)[2]:
            raise refuse(op, f"filter {w.shape} does not match input {inp.shape} / output "
                             f"{out.shape} (grouped convolution is not supported)")
        bias = self.bias(op, op.inputs[2] if len(op.inputs) > 2 else -1, oc)
        folded = _wrap32(bias - inp.zero_point * w.data.astype(np.int64).sum(axis=(1, 2, 3)))
        geo = self._conv_geometry(op, inp, out, kh, kw)
        params = self.out_params(op, inp, w, out, oc)
        self.add(op, "tinyhil_int8_conv_2d", [inp.index], [out.index], "tinyhil_int8_conv_t",
                 dict(weights=self.const(op, "w", "int8_t", w.data),
                      bias=self.const(op, "bias", "int32_t", folded), **params, **geo,
                      in_c=ic, out_c=oc, depth_multiplier=1, pad_value=inp.zero_point),
                 macs=geo["out_h"] * geo["out_w"] * oc * kh * kw * ic)

    def op_depthwise_conv_2d(self, op):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        w = self.weights(op, op.inputs[1], 4)
        _, kh, kw, oc = w.shape
        ic = self.nhwc(op, inp)[2]
        if oc % ic or oc != self.nhwc(op, out)[2]:
            raise refuse(op, f"filter {w.shape} does not match input {inp.shape} / output {out.shape}")
        bias = self.bias(op, op.inputs[2] if len(op.inputs) > 2 else -1, oc)
        folded = _wrap32(bias - inp.zero_point * w.data.astype(np.int64).sum(axis=(0, 1, 2)))
        geo = self._conv_geometry(op, inp, out, kh, kw)
        params = self.out_params(op, inp, w, out, oc)
        self.add(op, "tinyhil_int8_depthwise_conv_2d", [inp.index], [out.index],
                 "tinyhil_int8_conv_t",
                 dict(weights=self.const(op, "w", "int8_t", w.data),
                      bias=self.const(op, "bias", "int32_t", folded), **params, **geo,
                      in_c=ic, out_c=oc, depth_multiplier=oc // ic, pad_value=inp.zero_point),
                 macs=geo["out_h"] * geo["out_w"] * oc * kh * kw)

    def _pool(self, op, kernel):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        if (inp.scale, inp.zero_point) != (out.scale, out.zero_point):
            raise refuse(op, "input and output quantisation differ (TFLite requires them equal)")
        o = op.options
        pad = "SAME" if o.padding == 0 else "VALID"
        ih, iw, c = self.nhwc(op, inp)
        oh, ph = ops.padding(pad, ih, o.filterHeight, o.strideH)
        ow, pw = ops.padding(pad, iw, o.filterWidth, o.strideW)
        if (oh, ow, c) != self.nhwc(op, out):
            raise refuse(op, f"output shape {out.shape} does not follow from the pooling options")
        amin, amax = ops.activation_range(_activation(op), out.scale, out.zero_point)
        self.add(op, kernel, [inp.index], [out.index], "tinyhil_int8_pool_t",
                 dict(in_h=ih, in_w=iw, channels=c, out_h=oh, out_w=ow, f_h=o.filterHeight,
                      f_w=o.filterWidth, stride_h=o.strideH, stride_w=o.strideW, pad_h=ph,
                      pad_w=pw, act_min=amin, act_max=amax))

    def op_max_pool_2d(self, op):
        self._pool(op, "tinyhil_int8_max_pool_2d")

    def op_average_pool_2d(self, op):
        self._pool(op, "tinyhil_int8_average_pool_2d")

    def op_reshape(self, op):
        inp, out = self.t(op.inputs[0]), self.t(op.outputs[0])
        if inp.dtype != out.dtype or inp.size != out.size:
            raise refuse(op, f"reshape from {inp.dtype}{list(inp.shape)} to "
                             f"{out.dtype}{list(out.shape)} changes the type or size")
        self.aliases[out.index] = inp.index
        self.add(op, "", [inp.index], [out.index])

    def op_softmax(self, op):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        if out.zero_point != -128 or out.scale != ops.f32(1 / 256):
            raise refuse(op, f"softmax output quantisation (scale {out.scale}, zero point "
                             f"{out.zero_point}) must be 1/256 and -128, as TFLM requires")
        depth = inp.shape[-1]
        mult, shift, diff_min = ops.softmax_params(op.options.beta, inp.scale)
        self.add(op, "tinyhil_int8_softmax", [inp.index], [out.index], "tinyhil_int8_softmax_t",
                 dict(rows=inp.size // depth, depth=depth, input_multiplier=mult,
                      input_left_shift=shift, diff_min=diff_min))

    def op_logistic(self, op):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        if out.zero_point != -128:
            raise refuse(op, "logistic output zero point must be -128, as TFLM requires")
        mult, shift, radius = ops.logistic_params(inp.scale)
        self.add(op, "tinyhil_int8_logistic", [inp.index], [out.index], "tinyhil_int8_logistic_t",
                 dict(count=inp.size, input_zero_point=inp.zero_point, input_range_radius=radius,
                      input_multiplier=mult, input_left_shift=shift))

    def op_add(self, op):
        a, b = (self.activation_tensor(op, i) for i in op.inputs[:2])
        out = self.activation_tensor(op, op.outputs[0])
        if a.shape != b.shape:
            raise refuse(op, f"broadcasting ADD ({list(a.shape)} + {list(b.shape)}) is not "
                             "supported; inputs of equal shape are")
        p = ops.add_params(a.scale, b.scale, out.scale)
        amin, amax = ops.activation_range(_activation(op), out.scale, out.zero_point)
        self.add(op, "tinyhil_int8_add", [a.index, b.index], [out.index], "tinyhil_int8_add_t",
                 dict(count=out.size, input1_offset=-a.zero_point, input2_offset=-b.zero_point,
                      left_shift=p["left_shift"], input1_multiplier=p["m1"], input1_shift=p["s1"],
                      input2_multiplier=p["m2"], input2_shift=p["s2"],
                      output_multiplier=p["mo"], output_shift=p["so"],
                      output_zero_point=out.zero_point, act_min=amin, act_max=amax))

    def op_mean(self, op):
        inp, out = self.activation_tensor(op, op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        axes_t = self.t(op.inputs[1])
        if axes_t.data is None or len(inp.shape) > 4:
            raise refuse(op, "MEAN needs constant axes and an input of rank <= 4")
        rank = len(inp.shape)
        axes = sorted({int(a) % rank for a in np.ravel(axes_t.data)})
        dims = [1] * (4 - rank) + list(inp.shape)
        mask = sum(1 << (a + 4 - rank) for a in axes)
        count = int(np.prod([inp.shape[a] for a in axes]))
        mult, shift = ops.mean_params(inp.scale, out.scale, count)
        if count > 65535:
            raise refuse(op, f"MEAN over {count} elements; at most 65535 are supported")
        self.add(op, "tinyhil_int8_mean", [inp.index], [out.index], "tinyhil_int8_mean_t",
                 dict(dims=dims, reduce_mask=mask, count=count, input_zero_point=inp.zero_point,
                      multiplier=mult, shift=shift, output_zero_point=out.zero_point))

    def op_quantize(self, op):
        inp, out = self.t(op.inputs[0]), self.activation_tensor(op, op.outputs[0])
        if inp.dtype == "FLOAT32":
            self.activation_tensor(op, op.inputs[0], "FLOAT32")
            self.add(op, "tinyhil_int8_quantize", [inp.index], [out.index], "tinyhil_int8_affine_t",
                     dict(count=out.size, scale=ops.f32(out.scale), zero_point=out.zero_point))
        elif inp.dtype == "INT8":
            self.activation_tensor(op, op.inputs[0])
            mult, shift = ops.quantize_multiplier(float(inp.scale) / float(out.scale))
            self.add(op, "tinyhil_int8_requantize", [inp.index], [out.index],
                     "tinyhil_int8_requantize_t",
                     dict(count=out.size, input_zero_point=inp.zero_point, multiplier=mult,
                          shift=shift, output_zero_point=out.zero_point))
        else:
            raise refuse(op, f"QUANTIZE from {inp.dtype} is not supported (float32 or int8 is)")

    def op_dequantize(self, op):
        inp = self.activation_tensor(op, op.inputs[0])
        out = self.activation_tensor(op, op.outputs[0], "FLOAT32")
        self.add(op, "tinyhil_int8_dequantize", [inp.index], [out.index], "tinyhil_int8_affine_t",
                 dict(count=out.size, scale=ops.f32(inp.scale), zero_point=inp.zero_point))


def _strided_slice(op, x, begin, end, strides):
    o = op.options
    if o.ellipsisMask or o.newAxisMask:
        raise refuse(op, "STRIDED_SLICE with ellipsis or new-axis masks is not folded")
    index = []
    for d in range(len(begin)):
        b = None if o.beginMask >> d & 1 else int(begin[d])
        e = None if o.endMask >> d & 1 else int(end[d])
        if o.shrinkAxisMask >> d & 1:
            index.append(int(begin[d]))
        else:
            index.append(slice(b, e, int(strides[d])))
    return np.asarray(np.asarray(x)[tuple(index)], np.int32)


def lower(graph: Graph, name: str) -> Lowered:
    return _Lowerer(graph, name).lower()
