"""Generated blocks in hand-written markdown: the text between ``<!-- NAME:begin -->`` and
``<!-- NAME:end -->`` is a command's output, rewritten in place while the prose stays.

docs/reproduction.md (``verdicts``, ``designs``) and docs/benchmark.md (``table``, ``best``,
``pareto``, ``replay``) carry such blocks; their tests regenerate each block and compare.
"""

from __future__ import annotations

from pathlib import Path

from evaluators.record import write_atomic


def markers(block: str) -> tuple[str, str]:
    return f"<!-- {block}:begin -->", f"<!-- {block}:end -->"


def between(doc: str, begin: str, end: str) -> str:
    """The text a document carries between two markers (stripped)."""
    if begin not in doc or end not in doc:
        raise ValueError(f"the document has no {begin} ... {end} block")
    return doc.split(begin, 1)[1].split(end, 1)[0].strip()


def block_in_doc(doc: str, block: str) -> str:
    """The text a document carries between a block's markers."""
    return between(doc, *markers(block))


def update_doc(doc_path: str | Path, new: dict[str, str]) -> bool:
    """Rewrite each block between its markers; the rest stays. Atomic. True if changed."""
    path = Path(doc_path)
    doc = old = path.read_text()
    for block, text in new.items():
        block_in_doc(doc, block)  # raises ValueError when the block is missing
        begin, end = markers(block)
        head, rest = doc.split(begin, 1)
        doc = head + begin + "\n" + text + "\n" + end + rest.split(end, 1)[1]
    if doc != old:
        write_atomic(path, lambda f: f.write(doc.encode()))
    return doc != old
