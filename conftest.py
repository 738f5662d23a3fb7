"""Repository-level pytest configuration.

The tinyhil plugin (harness.plugin.core) is registered through the `pytest11` entry point when the
package is installed (`pip install -e .`). In a bare checkout that was never installed, load
it from here instead, so `pytest suites/ --board uno` works either way.
"""

from importlib.metadata import entry_points

if not any(ep.name == "tinyhil" for ep in entry_points(group="pytest11")):
    pytest_plugins = ["harness.plugin.core", "harness.plugin.lab", "harness.plugin.faults",
                      "harness.plugin.pio"]
