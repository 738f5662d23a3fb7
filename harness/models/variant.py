"""A model variant: one model, one exporter, one device input type. Plain data, declared in a
models file (harness/models/modelfile.py); harness/models/exports.py exports it."""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.protocol.wire import DTYPE_SIZE


@dataclass(frozen=True)
class ModelVariant:
    name: str              # e.g. "rf_emlearn": <model name>_<exporter> unless the file says `variant`
    model: str             # task / data set: "digits", "iris", the user's model name, or "probe"
    exporter: str          # "emlearn", "m2cgen", "micromlgen", "tinyhil"
    description: str
    input_count: int
    input_dtype: str       # a harness.protocol.wire.DTYPE name
    output_count: int
    output_dtype: str
    integer_features: bool  # True: the device must agree 100% with the host reference
    kind: str = "ml"       # "ml" or "probe" (protocol test models, not benchmarked by default)
    task: str = "classification"   # or "regression" (output: float32 value)
    # "class": output[0] is the class index; "scores": one score per class (the class is the
    # argmax, as TFLite classifiers give it)
    output_kind: str = "class"
    # Where the model comes from: a training recipe or the user's files, the scale, the file
    # that declared it, the digests of the files named (cache key). Not part of equality.
    spec: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def input_bytes(self) -> int:
        return self.input_count * DTYPE_SIZE[self.input_dtype]

    @property
    def output_bytes(self) -> int:
        return self.output_count * DTYPE_SIZE[self.output_dtype]

    def predicted_class(self, outputs):
        """The class index of each output row ((n, output_count) array)."""
        return outputs.argmax(axis=1) if self.output_kind == "scores" else outputs[:, 0]

    @property
    def estimator_name(self) -> str:
        return self.spec.get("estimator_class", "")
