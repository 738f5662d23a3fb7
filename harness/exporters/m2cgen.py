"""m2cgen: C with `double` (32-bit float on AVR); every estimator m2cgen's assemblers know."""

from __future__ import annotations

from harness.exporters.base import (Exporter, Generated, class_output, feature_prologue, infer,
                                    is_regressor, lib, value_output)


class M2cgen(Exporter):
    name = "m2cgen"

    def supports(self, estimator) -> str | None:
        from m2cgen.assemblers import get_assembler_cls
        try:
            get_assembler_cls(estimator)
        except NotImplementedError:
            return self.unsupported(estimator)
        return None

    def generate(self, v, estimator, scales) -> Generated:
        m2cgen = lib("m2cgen")
        # It also defines global helpers add_vectors/mul_vector_number: one m2cgen model per firmware.
        fn = f"{v.name}_score"
        source = m2cgen.export_to_c(estimator, function_name=fn)
        prologue, features = feature_prologue(v, "double", scales)
        if is_regressor(estimator):
            decl = f"double {fn}(double *input);\n\n"
            return Generated(source, decl + infer(prologue, value_output(f"{fn}(features)")))
        k = len(estimator.classes_)
        decl = f"void {fn}(double *input, double *output);\n\n"
        # argmax, first maximum wins like scikit-learn's predict
        body = (f"double proba[{k}];\n    {fn}(features, proba);\n    int16_t best = 0;\n"
                f"    for (int16_t i = 1; i < {k}; i++)\n        if (proba[i] > proba[best])\n"
                f"            best = i;\n    " + class_output("best", "0"))
        return Generated(source, decl + infer(prologue, body))


EXPORTER = M2cgen()
