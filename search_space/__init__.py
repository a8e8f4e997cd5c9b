"""igcbench search space: IGCV2-family designs, their exact costs, and their enumeration.

Example:
    >>> import search_space as ss
    >>> d = ss.parse("plain8-c144-k1.12.12")
    >>> ss.describe(d)["block_params"], ss.describe(d)["complementarity"]
    (4752, 'strict')

Importing this package does not import torch; ``build`` does.
"""

from .build import DEFAULT_IMPL, IMPLS, build
from .costs import DESCRIBE_KEYS, DESCRIBE_MEASURES, describe
from .design import NETS, Design, parse
from .enumerate import enumerate_designs
from .plan import default_input_size as input_size
from .plan import net_plan
from .theory import (
    balanced_branch_size,
    bottleneck_score,
    factorizations,
    most_balanced,
    optimal_L,
    optimal_L_separated,
    params_lower_bound,
    params_q,
    satisfies_product,
    theory_score,
    widest_width,
    xception_width,
)

__all__ = [
    "DESCRIBE_KEYS",
    "DESCRIBE_MEASURES",
    "DEFAULT_IMPL",
    "IMPLS",
    "NETS",
    "Design",
    "balanced_branch_size",
    "bottleneck_score",
    "build",
    "describe",
    "enumerate_designs",
    "factorizations",
    "input_size",
    "most_balanced",
    "net_plan",
    "optimal_L",
    "optimal_L_separated",
    "params_lower_bound",
    "params_q",
    "parse",
    "satisfies_product",
    "theory_score",
    "widest_width",
    "xception_width",
]
