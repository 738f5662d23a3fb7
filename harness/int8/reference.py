"""Host references for generated int8 C: TFLite Micro's interpreter (the bit-exact reference)
and LiteRT (a second opinion), plus input quantisation as the model's QUANTIZE would do it."""

from __future__ import annotations

import numpy as np

from harness.errors import HarnessError


def _tflm():
    try:
        from tflite_micro.python.tflite_micro import runtime
    except ImportError as e:
        raise HarnessError(f"the TFLM reference needs tflite-micro ({e}): install it with "
                           "`pip install 'tinyhil[int8]'`") from e
    return runtime


def tflm_outputs(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run TFLM on every row of inputs (already in the model's input dtype); (n, outputs)."""
    interp = _tflm().Interpreter.from_bytes(bytes(tflite_bytes))
    shape = interp.get_input_details(0)["shape"]
    dtype = interp.get_input_details(0)["dtype"]
    rows = []
    for x in inputs:
        interp.set_input(np.asarray(x, dtype).reshape(shape), 0)
        interp.invoke()
        rows.append(np.array(interp.get_output(0)).ravel())
    return np.stack(rows)


def litert_outputs(tflite_bytes: bytes, inputs: np.ndarray) -> np.ndarray | None:
    """The same with LiteRT (ai-edge-litert), or None when it is not installed."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        return None
    interp = Interpreter(model_content=bytes(tflite_bytes))
    interp.allocate_tensors()
    i, o = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for x in inputs:
        interp.set_tensor(i["index"], np.asarray(x, i["dtype"]).reshape(i["shape"]))
        interp.invoke()
        rows.append(np.array(interp.get_tensor(o["index"])).ravel())
    return np.stack(rows)


def quantize_input(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """float -> int8 as TFLite's QUANTIZE: round(x / scale) half away from zero, in float32."""
    q = (np.asarray(x, np.float32) / np.float32(scale)).astype(np.float64)  # exact widening
    q = np.sign(q) * np.floor(np.abs(q) + 0.5)
    return np.clip(q.astype(np.int64) + zero_point, -128, 127).astype(np.int8)
