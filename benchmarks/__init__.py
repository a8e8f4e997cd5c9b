"""Speed, cost and replay measurements (not tests): each writes JSON; run as modules from the
repository root, e.g. ``python -m benchmarks.speed --help``."""
