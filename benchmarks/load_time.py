"""Checkpoint loading time: ``load_model`` on one CPU thread, per preset (seconds per load).

    python benchmarks/load_time.py                       # gpt2 (124M) and backpack-gpt2
    python benchmarks/load_time.py --presets gpt2 --repeats 5

A checkpoint is saved once to a temporary folder, then loaded ``--repeats``
times; the first load warms the page cache and is not counted. The loader
builds the model on the meta device and assigns the stored tensors
(``load_state_dict(assign=True)``), so no time goes into random
initialisation that the weights then overwrite.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from impossible_lms.models import build_model, load_model, model_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="gpt2,backpack-gpt2")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for preset in args.presets.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            build_model(model_config(preset)).save_pretrained(tmp)
            load_model(Path(tmp))  # warm the page cache
            times = []
            for _ in range(args.repeats):
                start = time.perf_counter()
                load_model(Path(tmp))
                times.append(time.perf_counter() - start)
            print(f"{preset:16s} load_model: {min(times):6.3f} s (best of {args.repeats}, {args.threads} thread)")


if __name__ == "__main__":
    main()
