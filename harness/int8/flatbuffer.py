"""Read a .tflite flatbuffer into plain Python objects (tensors, operators, options).

Parsing uses the schema module that ships with the tflite-micro package (flatbuffers' object
API), so no flatbuffer bytes are read by hand here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from harness.errors import HarnessError

_INSTALL = "install it with `pip install 'tinyhil[int8]'` (or `pip install tflite-micro`)"


def schema():
    """The TFLite schema module (flatbuffers object API) from the tflite-micro package."""
    try:
        from tflite_micro.tensorflow.lite.micro.python import schema_py_generated
    except ImportError as e:
        raise HarnessError(f"reading .tflite models needs tflite-micro ({e}): {_INSTALL}") from e
    return schema_py_generated


# numpy dtypes of the TFLite tensor types this generator can meet (others are refused later)
_NP_TYPES = {"FLOAT32": np.float32, "INT32": np.int32, "UINT8": np.uint8, "INT64": np.int64,
             "INT8": np.int8, "INT16": np.int16, "BOOL": np.bool_}


def _enum_names(cls) -> dict[int, str]:
    return {v: k for k, v in vars(cls).items() if not k.startswith("_") and isinstance(v, int)}


@dataclass
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                      # TFLite type name: "INT8", "FLOAT32", "INT32", ...
    scales: list[float] = field(default_factory=list)   # float32 values, as stored
    zero_points: list[int] = field(default_factory=list)
    quantized_dim: int = 0
    data: np.ndarray | None = None  # constant tensors only

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def scale(self) -> float:
        return self.scales[0]

    @property
    def zero_point(self) -> int:
        return self.zero_points[0] if self.zero_points else 0

    @property
    def is_per_channel(self) -> bool:
        return len(self.scales) > 1


@dataclass
class Operator:
    index: int
    name: str                 # builtin name: "FULLY_CONNECTED", "CONV_2D", ...
    inputs: list[int]         # tensor indices; -1 marks an absent optional input
    outputs: list[int]
    options: object           # the schema's *OptionsT object, or None


@dataclass
class Graph:
    tensors: list[Tensor]
    operators: list[Operator]
    inputs: list[int]
    outputs: list[int]


def read(tflite_bytes: bytes) -> Graph:
    """Parse the flatbuffer's first subgraph."""
    fb = schema()
    if len(tflite_bytes) < 8 or tflite_bytes[4:8] != b"TFL3":
        raise HarnessError("not a .tflite flatbuffer (no 'TFL3' identifier at byte 4): "
                           "pass the bytes of a file written by the TFLite converter")
    model = fb.ModelT.InitFromPackedBuf(bytearray(tflite_bytes), 0)
    if len(model.subgraphs) != 1:
        raise HarnessError(f"the model has {len(model.subgraphs)} subgraphs; tinyhil-int8 "
                           "supports models with exactly one (no control flow)")
    type_names = _enum_names(fb.TensorType)
    op_names = _enum_names(fb.BuiltinOperator)
    sg = model.subgraphs[0]

    tensors = []
    for i, t in enumerate(sg.tensors):
        dtype = type_names.get(t.type, f"type {t.type}")
        buf = model.buffers[t.buffer] if t.buffer < len(model.buffers) else None
        data = None
        shape = tuple(int(d) for d in (t.shape if t.shape is not None else ()))
        if buf is not None and buf.data is not None and len(buf.data) and dtype in _NP_TYPES:
            data = np.frombuffer(bytes(bytearray(buf.data)), _NP_TYPES[dtype]).reshape(shape)
        q = t.quantization
        scales = [float(np.float32(s)) for s in (q.scale if q is not None and q.scale is not None else [])]
        zps = [int(z) for z in (q.zeroPoint if q is not None and q.zeroPoint is not None else [])]
        name = t.name.decode() if isinstance(t.name, bytes) else (t.name or f"t{i}")
        tensors.append(Tensor(i, name, shape, dtype, scales, zps,
                              int(q.quantizedDimension) if q is not None else 0, data))

    operators = []
    for i, op in enumerate(sg.operators):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(int(code.builtinCode or 0), int(code.deprecatedBuiltinCode or 0))
        name = op_names.get(builtin, f"opcode {builtin}")
        if name == "CUSTOM":
            custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
            name = f"CUSTOM({custom})"
        operators.append(Operator(i, name, [int(x) for x in op.inputs],
                                  [int(x) for x in op.outputs], op.builtinOptions))
    return Graph(tensors, operators, [int(x) for x in sg.inputs], [int(x) for x in sg.outputs])
