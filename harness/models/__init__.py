"""Model variants, as data: declared in a models file (modelfile.py: the user's `--models`
file, or the shipped demo catalogue devices/models/demo.toml), chosen for the run
(catalogue.py), exported to C/C++ with a plug-in exporter and checked on the host (exports.py,
reference.py)."""

from harness.exporters import NotExportable
from harness.models.catalogue import catalogue, get_variant, list_variants, use_models_file
from harness.models.exports import NP_DTYPE, ExportedModel, export
from harness.models.reference import CXX_FLAGS
from harness.models.variant import ModelVariant
from harness.protocol.wire import DTYPE

__all__ = ["ModelVariant", "ExportedModel", "NotExportable", "export", "list_variants",
           "get_variant", "use_models_file", "catalogue", "DTYPE", "NP_DTYPE", "CXX_FLAGS"]
