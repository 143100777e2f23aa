#!/usr/bin/env bash
# One GPU session, prepared on CPU: install what the GPU image lacks, then
#   1. gpu_check.py's training rows (the targets: gpt2 and Backpack, against transformers' GPT-2
#      and the nanoGPT-style model, compiled, bf16), then its evaluation rows;
#   2. the real pipeline on CUDA (ilm run on the demo, one hop language, a few steps): the trainer's
#      compile + bf16 + chunked loss, meta-device loading, eval padding, the analyses.
# Each part has its own time limit, so one that hangs cannot eat the others' time; every row is
# written to $OUT/rows.txt the moment it is measured.
#
#   bash benchmarks/gpu_session.sh [OUT_DIR] [PRESETS]     (wheels for datasets/nltk/pluralizer in .whl/)
set -u
OUT=${1:-${OUT:-/tmp/gpu_out}}
PRESETS=${2:-gpt2,backpack-gpt2}
TRAIN_S=${TRAIN_S:-240}
EVAL_S=${EVAL_S:-150}
DEMO_S=${DEMO_S:-90}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [ -d .whl ]; then
  # datasets >= 5 needs pyarrow >= 24: carry one only when the image's is older
  python3 -c "import pyarrow, sys; sys.exit(int(pyarrow.__version__.split('.')[0]) < 24)" 2>/dev/null \
    || cp .whlpa/*.whl .whl/ 2>/dev/null
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site:$PWD || exit 1
fi
{
  date -u
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv
  python3 -c "import sys, torch, transformers, triton, datasets; print(sys.version.split()[0], 'torch', torch.__version__, 'transformers', transformers.__version__, 'triton', triton.__version__, 'datasets', datasets.__version__)"
} 2>&1 | tee "$OUT/machine.txt"

step() {  # step NAME SECONDS COMMAND...: run with a limit, keep the whole log, say how it ended
  local name=$1 limit=$2; shift 2
  local start=$SECONDS
  timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  echo "== $name: exit $rc after $((SECONDS - start)) s (limit $limit s)" | tee -a "$OUT/rows.txt"
  grep -E "^\[|Error|error:|Traceback" "$OUT/$name.log" | grep -v "^\[transformers\]" | tail -25
}

step train "$TRAIN_S" python3 benchmarks/gpu_check.py --skip eval --settings fast --presets "$PRESETS" --out "$OUT/rows.txt"
step eval "$EVAL_S" python3 benchmarks/gpu_check.py --skip train --skip agree --out "$OUT/rows.txt"
step demo "$DEMO_S" python3 -m cli run experiments/demo.yaml --set out=/tmp/gdemo --set train.device=cuda \
  --set "languages=[token_hop]" --set train.schedule.steps=50 --set train.checkpoint.every=25 \
  --set analyses.treeproj.checkpoints=50
tail -20 "$OUT/demo.log"
