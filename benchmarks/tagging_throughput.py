"""Tagging throughput: ``python benchmarks/tagging_throughput.py CORPUS [TAGGER] [SPLIT]``.

Prints sentences/s and words/s per corpus file (no cache, so the tagger does the
work). A benchmark script, not a test: numbers depend on the machine.
"""

from __future__ import annotations

import sys
import time

from impossible_lms.corpus import open_corpus
from impossible_lms.tagging import get_tagger


def measure(corpus: str, tagger: str = "nltk", split: str | None = "dev") -> list[dict]:
    tag = get_tagger(tagger)
    rows = []
    for f in open_corpus(corpus).files(split):
        start = time.perf_counter()
        sentences = tag.process(f)
        seconds = time.perf_counter() - start
        words = sum(len(s.words or ()) for s in sentences)
        rows.append({"file": f.name, "sentences": len(sentences), "words": words, "seconds": seconds})
    return rows


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit(__doc__)
    rows = measure(argv[0], *(argv[1:3]))
    total = {k: sum(r[k] for r in rows) for k in ("sentences", "words", "seconds")}
    for r in rows + [{"file": "total", **total}]:
        print(f"{r['file']:<24} {r['sentences']:>9,} sent {r['words']:>10,} words {r['seconds']:7.1f}s "
              f"{r['sentences'] / r['seconds']:8,.0f} sent/s {r['words'] / r['seconds']:9,.0f} words/s")


if __name__ == "__main__":
    main(sys.argv[1:])
