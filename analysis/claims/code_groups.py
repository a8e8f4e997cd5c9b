"""Which records were trained by the same code, so that an analysis pools only those.

A record's training code is the git trees of search_space/ and evaluators/ at its commit
(``evaluators.provenance.training_code``; ``+dirty`` when the record says its code differed
from the commit). Two codes count as one when a recheck (``benchmarks/recheck.py``) re-ran
records of one with the other and found every one equal (and at least one); equality is
then carried along chains (A = B and B = C pools A with C). Records whose codes are not
shown equal are separated: their fidelity is labelled with the code
(``cpu [code 7cb3e666f5/dbf35f53c1]``), so that no table mixes them.

Example:
    >>> import pandas as pd
    >>> df = pd.DataFrame({"fidelity": ["cpu", "cpu", "cpu2"], "dataset": "x",
    ...                    "training_code": ["a/1", "b/2", "c/3"]})
    >>> separate_codes(df, []).fidelity.tolist()
    ['cpu [code a/1]', 'cpu [code b/2]', 'cpu2']
    >>> separate_codes(df, [("a/1", "b/2", True)]).fidelity.tolist()
    ['cpu', 'cpu', 'cpu2']
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from evaluators.provenance import REPO, UNKNOWN_CODE, record_training_code

CODE_COLUMN = "training_code"
RECHECK_GLOB = "recheck*.json"  # beside the exports they rechecked (docs/reproduction/)
#: Where the committed rechecks lie: what a verdict may pool by default.
COMMITTED = REPO / "docs" / "reproduction"


def with_training_code(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with a ``training_code`` column (kept if present), from each record's commit
    and dirty flag; ``unknown`` where there is no commit."""
    if CODE_COLUMN in df.columns:
        return df

    def column(name: str) -> list:
        if name not in df.columns:
            return [None] * len(df)
        return [None if pd.isna(v) else v for v in df[name]]

    keys = list(zip(column("commit"), column("commit_dirty"), strict=True))
    codes = {k: record_training_code({"commit": k[0], "commit_dirty": k[1]})
             for k in set(keys)}
    out = df.copy()
    out[CODE_COLUMN] = [codes[k] for k in keys]
    return out


def read_equalities(folder: str | Path) -> list[tuple[str, str, bool]]:
    """(recorded code, re-run code, equal) per record of every recheck JSON in ``folder``
    (``recheck*.json``, as benchmarks/recheck.py writes them); [] if there is none."""
    out = []
    for path in sorted(Path(folder).glob(RECHECK_GLOB)):
        doc = json.loads(path.read_text())
        out += [(r["recorded_code"], r["rerun_code"], bool(r["equal"]))
                for r in doc["records"]]
    return out


def code_classes(equalities: Iterable[tuple[str, str, bool]]) -> dict[str, str]:
    """code -> its class's name (the smallest code in it): codes joined by a pair found
    equal every time it was rechecked."""
    verdict: dict[frozenset, bool] = {}
    for a, b, equal in equalities:
        pair = frozenset((a, b))
        verdict[pair] = verdict.get(pair, True) and equal
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        while parent.setdefault(x, x) != x:
            x = parent[x]
        return x

    for pair, equal in verdict.items():
        if equal and len(pair) == 2:
            a, b = sorted(pair)
            ra, rb = root(a), root(b)
            parent[max(ra, rb)] = min(ra, rb)
    return {x: root(x) for x in list(parent)}


def separate_codes(df: pd.DataFrame,
                   equalities: Iterable[tuple[str, str, bool]]) -> pd.DataFrame:
    """``df`` with the fidelity of every (dataset, fidelity) that holds more than one class
    of training code relabelled ``FIDELITY [code CLASS]``; slices of one class unchanged."""
    df = with_training_code(df)
    classes = code_classes(equalities)
    cls = df[CODE_COLUMN].map(lambda c: classes.get(c, c))
    n = cls.groupby([df["dataset"], df["fidelity"]]).transform("nunique")
    out = df.copy()
    mixed = n.gt(1)
    out.loc[mixed, "fidelity"] = (df.loc[mixed, "fidelity"].astype(str) + " [code "
                                  + cls[mixed].astype(str) + "]")
    return out


def fidelity_base(label: str) -> str:
    """The fidelity of a label :func:`separate_codes` made (``cpu [code x]`` -> ``cpu``)."""
    return label.split(" [code ", 1)[0]


@dataclass(frozen=True)
class CodeChoice:
    """The training code a verdict's records were trained by, and the records left out.

    Attributes:
        codes: the codes of the records kept (several only when rechecks showed them equal).
        kept: records kept.
        left_out: code -> records left out, for each code not shown equal to ``codes``.
    """

    codes: tuple[str, ...]
    kept: int
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def n_left_out(self) -> int:
        return sum(self.left_out.values())

    def describe(self) -> str:
        """``7abe1403be/6715f5b67f = 7abe1403be/dbf35f53c1 (equal in a recheck); 45 records``
        and, when some were left out, which codes and why."""
        text = " = ".join(self.codes) + (" (equal in a recheck)" if len(self.codes) > 1
                                        else "")
        text += f"; {self.kept} records"
        if self.left_out:
            out = ", ".join(f"{n} of code {c}" for c, n in sorted(self.left_out.items()))
            text += f"; left out {self.n_left_out} ({out}: no recheck shows it equal)"
        return text


def one_code(rows: pd.DataFrame, equalities: Iterable[tuple[str, str, bool]]
             ) -> tuple[pd.DataFrame, CodeChoice]:
    """The records of ``rows`` (one slice) of one class of training code, and what was kept.

    The class kept is the most complete: the most designs with an ok record, then the most
    ok records, then the newest (latest ``created``), then the code's name. Records with no
    commit (code ``unknown``) are a class of their own: kept only where nothing else is.
    """
    rows = with_training_code(rows)
    classes = code_classes(equalities)
    cls = rows[CODE_COLUMN].map(lambda c: classes.get(c, c))

    def rank(c: str) -> tuple:
        g = rows[cls.eq(c)]
        ok = g[g["status"].eq("ok")]
        newest = str(g["created"].max()) if "created" in g.columns else ""
        return (not c.startswith(UNKNOWN_CODE), ok["design_id"].nunique(), len(ok), newest, c)

    best = max(cls.unique(), key=rank)
    keep = cls.eq(best)
    left = rows.loc[~keep, CODE_COLUMN].value_counts()
    codes = tuple(sorted(rows.loc[keep, CODE_COLUMN].unique()))
    return rows[keep], CodeChoice(codes, int(keep.sum()), {str(c): int(n)
                                                          for c, n in left.items()})


def committed_equalities() -> list[tuple[str, str, bool]]:
    """The committed rechecks' results (:data:`COMMITTED`)."""
    return read_equalities(COMMITTED)
