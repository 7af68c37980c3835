"""From a checked config to the built parts of a run: the registry of components by name."""
