"""What scripts/bench.py measures, one module per mode, all timed by the same core (timing)."""
