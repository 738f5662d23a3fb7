"""A running device under test: its owner (device), its supervisor and fault recovery."""
