"""micromlgen: a C++ class per model (EloquentTinyML). Compiled with the arch's C++ compiler;
the glue calls an `extern "C"` wrapper appended to the class. Hard votes, float features."""

from __future__ import annotations

import re

from harness.exporters.base import Exporter, Generated, class_output, feature_prologue, infer, lib


class Micromlgen(Exporter):
    name = "micromlgen"
    language = "c++"

    def supports(self, estimator) -> str | None:
        from sklearn.base import is_classifier
        if not is_classifier(estimator):
            return self.unsupported(estimator)
        try:
            lib("micromlgen").port(estimator)
        except Exception:   # micromlgen raises TypeError (or worse) for what it cannot port
            return self.unsupported(estimator)
        return None

    def generate(self, v, estimator, scales) -> Generated:
        ported = lib("micromlgen").port(estimator).replace("#pragma once\n", "", 1)
        cls = re.search(r"class (\w+)", ported).group(1)
        source = (f"/* micromlgen C++ class, and a C entry point for the tinyhil glue */\n"
                  f"#include <stdint.h>\n#include <math.h>\n{ported}\n\n"
                  f'extern "C" int32_t {v.name}_predict(const float *x)\n{{\n'
                  f"    Eloquent::ML::Port::{cls} model;\n    return model.predict((float *)x);\n}}\n")
        prologue, features = feature_prologue(v, "float", scales)
        decl = f"int32_t {v.name}_predict(const float *x);\n\n"
        return Generated(source, decl + infer(prologue, class_output(f"{v.name}_predict({features})")),
                         suffix=".cpp")


EXPORTER = Micromlgen()
