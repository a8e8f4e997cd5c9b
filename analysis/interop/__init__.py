"""A table in the formats other tools read: syne-tune's blackbox repository and simulator
(:mod:`analysis.interop.synetune`), ConfigSpace with an objective function for SMAC, DEHB
and their benchmark collections (:mod:`analysis.interop.configspace`). The space they
share, and how a configuration that is not a design of the table is answered:
:mod:`analysis.interop.space`. The CLI is ``python -m analysis.interop.export`` (docs/benchmark.md).

syne-tune and ConfigSpace are optional (``pip install -e ".[interop]"``); they are imported
only by the functions that need them.
"""
