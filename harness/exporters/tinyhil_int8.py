"""tinyhil-int8: a fully int8-quantised TensorFlow Lite model as plain C (harness/int8), with
the harness's own kernels (devices/firmware/int8). Its reference model is TFLite Micro's
interpreter (the tflite-micro package): the device must equal it byte for byte."""

from __future__ import annotations

from dataclasses import dataclass

from harness.exporters.base import Exporter, Generated, NotExportable, infer


@dataclass(frozen=True)
class TfliteModel:
    """The bytes of a .tflite file, standing where an estimator stands for the other exporters."""
    data: bytes
    path: str


class TinyhilInt8(Exporter):
    name = "tinyhil-int8"
    suffix = "int8"             # variant names <model>_int8 (a C identifier)

    def supports(self, model) -> str | None:
        if not isinstance(model, TfliteModel):
            return self.unsupported(model)
        from harness.int8 import UnsupportedModel, generate
        try:
            generate(model.data, "check")
        except UnsupportedModel as exc:
            return f"not exportable: {exc}"
        return None

    def generate(self, v, model, scales) -> Generated:
        from harness.int8 import UnsupportedModel, generate, kernels_dir
        try:
            m = generate(model.data, v.name, model_id=f"{v.model}/{v.name}")
        except UnsupportedModel as exc:
            raise NotExportable(f"not exportable: {exc}") from None
        decl = f"int {v.name}_invoke(const void *input, void *output);\n\n"
        if v.spec.get("profile_layers"):
            return self._profiled(v, m, decl)
        facts = {"arena_bytes": m.arena_bytes, "weight_bytes": m.weight_bytes,
                 "input_scale": m.input_scale, "input_zero_point": m.input_zero_point,
                 "layers": [vars(layer) for layer in m.layers]}
        return Generated(m.model_c, decl + infer("", f"return {v.name}_invoke(input, output);"),
                         include_dirs=[kernels_dir()],
                         extra_sources=[kernels_dir() / "tinyhil_int8.c"], facts=facts)


    def _profiled(self, v, m, decl) -> Generated:
        """The same model, its output replaced by the device counter's ticks spent in each
        layer (int32 per layer; each includes one counter read)."""
        from harness.int8 import kernels_dir
        n = max(layer.index for layer in m.layers) + 1
        prelude = PROFILE_PRELUDE.format(n=n)
        body = (f"static int8_t scratch[{m.output_count * (4 if m.output_dtype == 'float32' else 1)}];\n"
                f"    for (uint16_t i = 0; i < {n}; i++)\n        tinyhil_layer_cycles[i] = 0;\n"
                f"    const int rc = {v.name}_invoke(input, scratch);\n"
                f"    memcpy(output, tinyhil_layer_cycles, sizeof tinyhil_layer_cycles);\n"
                f"    return rc;")
        glue = (f"extern uint32_t tinyhil_layer_cycles[{n}];\n"
                "/* The host reference has no port: a zero counter there (the port's wins). */\n"
                "__attribute__((weak)) uint32_t tinyhil_port_cycles(void) { return 0; }\n\n")
        return Generated(prelude + m.model_c, glue + decl + infer("", body),
                         include_dirs=[kernels_dir()],
                         extra_sources=[kernels_dir() / "tinyhil_int8.c"],
                         facts={"layers": [vars(layer) for layer in m.layers],
                                "input_scale": m.input_scale, "input_zero_point": m.input_zero_point})


# Defined before tinyhil_int8.h, whose default hooks are empty.
PROFILE_PRELUDE = """\
/* Per-layer timing build (tinyhil layer suite): ticks of tinyhil_port_cycles() per layer. */
#include <stdint.h>
uint32_t tinyhil_port_cycles(void);
uint32_t tinyhil_layer_cycles[{n}];
static uint32_t tinyhil_layer_start;
#define TINYHIL_LAYER_BEGIN(i) (tinyhil_layer_start = tinyhil_port_cycles())
#define TINYHIL_LAYER_END(i) (tinyhil_layer_cycles[(i)] += tinyhil_port_cycles() - tinyhil_layer_start)

"""


def layer_profile(variant, exported):
    """The variant's per-layer timing build: same model, output = int32 ticks per layer."""
    from dataclasses import replace
    n = max(layer["index"] for layer in exported.facts["layers"]) + 1
    return replace(variant, name=f"{variant.name}_layers", output_count=n, output_dtype="int32",
                   output_kind="class", spec=dict(variant.spec, profile_layers=True))


EXPORTER = TinyhilInt8()
