"""The pytest layer: options read once into a run configuration, fixtures, and the optional
plugins (lab scale) the core does not import."""
