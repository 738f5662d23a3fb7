"""Quantisation maths done at generation time, following TFLite's integer arithmetic.

The facts (formulas, rounding, which values are float32 and which double) come from
TFLite's quantization_util.cc, kernel_util.cc and the TFLM kernels' Prepare functions;
the code is our own. Everything here runs in Python on the host; the C kernels only see
the resulting integers.
"""

from __future__ import annotations

import math

import numpy as np

INT8_MIN, INT8_MAX = -128, 127


def tflite_round(x: float) -> int:
    """std::round: halves away from zero (Python's round() goes to even)."""
    return int(math.floor(abs(x) + 0.5)) * (1 if x >= 0 else -1)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """(multiplier, shift) with real ~= multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = tflite_round(q * (1 << 31))
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:  # flushed to zero, as TFLite does
        return 0, 0
    return q_fixed, shift


def f32(x) -> float:
    return float(np.float32(x))


def activation_range(activation: str, scale: float, zero_point: int) -> tuple[int, int]:
    """Clamp bounds of a fused activation on an int8 output (CalculateActivationRangeQuantized).

    TFLite quantises 0 and 6 in float32: round(f / scale) + zero_point."""
    def q(f):
        return zero_point + tflite_round(f32(np.float32(f) / np.float32(scale)))
    if activation == "NONE":
        return INT8_MIN, INT8_MAX
    if activation == "RELU":
        return max(INT8_MIN, q(0.0)), INT8_MAX
    if activation == "RELU6":
        return max(INT8_MIN, q(0.0)), min(INT8_MAX, q(6.0))
    if activation == "RELU_N1_TO_1":
        return max(INT8_MIN, q(-1.0)), min(INT8_MAX, q(1.0))
    raise ValueError(activation)


def conv_multipliers(input_scale: float, filter_scales: list[float], output_scale: float,
                     channels: int) -> tuple[list[int], list[int]]:
    """Per-output-channel (multiplier, shift): input_scale * filter_scale / output_scale in
    double from float32 scales. A per-tensor filter scale is repeated for every channel."""
    scales = filter_scales if len(filter_scales) > 1 else filter_scales * channels
    pairs = [quantize_multiplier(float(input_scale) * float(s) / float(output_scale)) for s in scales]
    return [m for m, _ in pairs], [s for _, s in pairs]


def padding(kind: str, in_size: int, filter_size: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """(output size, padding before) for TFLite's SAME / VALID padding."""
    eff = (filter_size - 1) * dilation + 1
    if kind == "SAME":
        out = (in_size + stride - 1) // stride
    else:
        out = (in_size - eff + stride) // stride
    total = max((out - 1) * stride + eff - in_size, 0)
    return out, total // 2


def softmax_params(beta: float, input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, diff_min) of TFLite's int8 softmax (5 integer bits)."""
    integer_bits = 5
    real = min(float(beta) * float(input_scale) * (1 << (31 - integer_bits)), (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return mult, shift, -radius


def logistic_params(input_scale: float) -> tuple[int, int, int]:
    """(input multiplier, left shift, input range radius) of TFLite's int8 logistic (Q4.27)."""
    integer_bits = 4
    q, shift = math.frexp(float(input_scale) * (1 << (31 - integer_bits)))
    mult = tflite_round(q * (1 << 31))  # TFLM does not renormalise 2^31 here
    radius = math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift)) \
        if shift >= 0 else math.floor(((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) * 2.0 ** -shift)
    return mult, shift, radius


def add_params(s1: float, s2: float, s_out: float) -> dict:
    """Multipliers of TFLite's int8 ADD: both inputs to 2 * max scale, 20 bits of headroom."""
    left_shift = 20
    twice_max = 2 * max(float(s1), float(s2))
    m1, sh1 = quantize_multiplier(float(s1) / twice_max)
    m2, sh2 = quantize_multiplier(float(s2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / ((1 << left_shift) * float(s_out)))
    return dict(left_shift=left_shift, m1=m1, s1=sh1, m2=m2, s2=sh2, mo=mo, so=sho)


def mean_params(input_scale: float, output_scale: float, count: int) -> tuple[int, int]:
    """Multiplier and shift of TFLite's int8 MEAN with the 1/count folded in (reduce.h)."""
    mult, shift = quantize_multiplier(float(input_scale) / float(output_scale))
    k = min(count.bit_length() - 1, 32, 31 + shift)
    return (mult << k) // count, shift - k
