"""Speed, cost and replay measurements (not tests): each writes JSON; run as modules from the
repository root, e.g. ``python -m benchmarks.speed --help``. Two scripts hold their parts in
modules that do not run: ``engine_throughput`` (``engine_measure``: the timings,
``engine_report``: targets, choice and doc block) and ``speed`` (``block_timing``,
``block_numerics``)."""
