"""emlearn: trees and forests as inline if/else C (integer or float features), and the
loadable float MLP (the only MLP form that works in emlearn 0.23.2)."""

from __future__ import annotations

import contextlib
import copy
import os
import tempfile
from pathlib import Path

import numpy as np

from harness.exporters.base import (Exporter, Generated, class_output, feature_prologue, infer,
                                    is_regressor, lib, value_output)

TREES = {"DecisionTreeClassifier", "DecisionTreeRegressor", "RandomForestClassifier",
         "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor"}
MLP = {"MLPClassifier"}


def integer_thresholds(estimator, scales):
    """A copy whose split thresholds emlearn's integer code generation keeps exact.

    emlearn writes `if (features[f] < (int)threshold)`, truncating scikit-learn's
    `x <= 0.5` into `x < 0` (never true): that costs the forest ~10 points of accuracy.
    The device sees round(x * scale); for integer x, `x <= t` is `x < floor(t) + 1`, which
    survives the truncation (scale 1: the thresholds of the integer-trained tree)."""
    est = copy.deepcopy(estimator)
    scales = np.asarray(scales, dtype=np.float64)
    for tree in getattr(est, "estimators_", [est]):
        t = tree.tree_
        split = t.children_left != -1
        t.threshold[split] = np.floor(t.threshold[split] * scales[t.feature[split]]) + 1  # a view
    return est


@contextlib.contextmanager
def scratch_cwd():
    """emlearn's MLP convert compiles a test binary into ./tmp of the current directory at
    once; run it in a throwaway directory so it never litters the user's working tree."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="tinyhil-emlearn-") as scratch:
        os.chdir(scratch)
        try:
            yield
        finally:
            os.chdir(old)


class Emlearn(Exporter):
    name = "emlearn"

    def supports(self, estimator) -> str | None:
        kind = type(estimator).__name__
        return None if kind in TREES | MLP else self.unsupported(estimator)

    def generate(self, v, estimator, scales) -> Generated:
        emlearn = lib("emlearn")
        includes = [Path(emlearn.includedir)]
        n = v.input_count
        if type(estimator).__name__ in MLP:
            with scratch_cwd():
                source = emlearn.convert(estimator, method="loadable").save(name=v.name)
            prologue, features = feature_prologue(v, "float", scales)
            decl = f"int32_t {v.name}_predict(const float *features, int32_t n_features);\n\n"
            body = class_output(f"{v.name}_predict({features}, {n})")
            # emlearn returns a negative EmlError on failure
            return Generated(source, decl + infer(prologue, body), include_dirs=includes)
        integer = v.input_dtype != "float32"
        ctype = "int16_t" if integer else "float"
        if integer:
            estimator = integer_thresholds(estimator, scales)
        # method="inline": if/else code, thresholds as immediates, so the trees live in flash.
        # leaf_bits default 0 = hard majority vote; scikit-learn averages probabilities, so the
        # C may pick another class on close votes (ties go to the lowest class index).
        c = emlearn.convert(estimator, method="inline", dtype=ctype)
        source = c.save(name=v.name, include_proba=False)
        prologue, features = feature_prologue(v, ctype, None)
        if is_regressor(estimator):
            decl = f"float {v.name}_predict(const {ctype} *features, int32_t features_length);\n\n"
            body = value_output(f"{v.name}_predict({features}, {n})")
        else:  # emlearn returns -1 if no class got a vote
            decl = f"int32_t {v.name}_predict(const {ctype} *features, int32_t features_length);\n\n"
            body = class_output(f"{v.name}_predict({features}, {n})")
        return Generated(source, decl + infer(prologue, body), include_dirs=includes)


EXPORTER = Emlearn()
