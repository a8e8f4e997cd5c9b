#!/usr/bin/env bash
# Regenerate everything docs/proxies.md and docs/benchmark.md say about one table, from its
# release and its zero-cost run directory, then run the tests that check them:
#
#   bash benchmarks/table_docs.sh TAG RELEASE ZC_RUN_DIR PROXY [PROXY ...]
#   bash benchmarks/table_docs.sh t40k releases/igcbench-1.1.json runs/zc-table40k \
#       synflow theory naswot
#
# 1. analysis.proxies.report: exports the scores to docs/proxies/zc-<RELEASE's table>.csv,
#    rewrites the <TAG>-* blocks of docs/proxies.md (correlations, matrix, answer, surrogate
#    cross-validation) and draws docs/proxies/<TAG>.{png,svg} (~2-4 min on 2 busy cores);
# 2. benchmarks/replay.py: random, tpe-struct, zc-tpe-struct and zc-order with ASHA, 1 and 4
#    workers, 50 repeats, into docs/benchmark/search-<TAG>/ (~1-2 min);
# 3. analysis.replay.search_report: the <TAG>-search block of docs/benchmark.md;
# 4. analysis.proxies.equal_params_report: the <TAG>-within and <TAG>-axis blocks of docs/proxies.md
#    (every score within pairs of equal block weights; NASWOT's parts);
# 5. the tests that regenerate those blocks (the surrogate's is marked slow).
set -euo pipefail
if [ "$#" -lt 4 ]; then
    echo "usage: bash benchmarks/table_docs.sh TAG RELEASE ZC_RUN_DIR PROXY [PROXY ...]" >&2
    exit 2
fi
tag=$1 release=$2 zc=$3
shift 3
cd "$(dirname "$0")/.."
scores="docs/proxies/zc-${tag}.csv"
python -m analysis.proxies.report "$release" "$zc" --export "$scores" --tag "$tag" \
    --update docs/proxies.md --figures docs/proxies
python -m benchmarks.replay "$release" --strategies random tpe-struct zc-tpe-struct zc-order \
    --scores "$scores" --proxy "$@" --schedulers asha --workers 1 4 --repeats 50 \
    --out "docs/benchmark/search-${tag}"
python -m analysis.replay.search_report "docs/benchmark/search-${tag}/replay.json" --tag "$tag" \
    --update docs/benchmark.md
python -m analysis.proxies.equal_params_report table "$release" "$scores" --tag "$tag" \
    --update docs/proxies.md
python -m pytest -q tests/test_proxy_report.py tests/test_structured_search.py \
    tests/test_equal_params.py
python -m pytest -q -m slow tests/test_proxy_report.py -k surrogate
