"""Fault injection for tests of the harness itself (the fault-injecting link)."""
