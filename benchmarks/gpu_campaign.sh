#!/usr/bin/env bash
# Train the bundled model on a lent GPU machine (issue 23, item 7), within one device call.
#
# Prepared here with `python benchmarks/gpu_campaign.py pack ...` and `... wheels` (see that
# file), then, as the device tool's command with carry [".train", ".whl"]:
#
#   bash benchmarks/gpu_campaign.sh [MINUTES] [BATCH] [LR]        # defaults: 7 128 0.002
#
# From the shipped weights, the bundled recipe (band split n_fft 256, utterance band norm, loss
# l1+3, N_re 2, 4-s crops), bf16 autocast, a large batch. Phase 1 holds the rate constant for
# three quarters of MINUTES; phase 2 resumes the run with a half-cosine decay planned over the
# steps that phase 1's measured speed fits into the rest. The run folder (config, metrics, the
# averaged model, last.pt, the 2 best epochs) and phase 1's last.pt (to continue at the constant
# rate) land in $OUT: 7 files, under the 8 that come back.
#
# Environment: TISDISS_GPU_DEVICE (cuda), TISDISS_GPU_PRECISION (bf16), TISDISS_GPU_WORKERS (12),
# TISDISS_GPU_INIT (the shipped weights), TISDISS_GPU_DATA (.train/speech8k), TISDISS_GPU_WHEELS
# (.whl), TISDISS_GPU_VALID (200 mixtures). A rehearsal on this CPU, in a minute:
#   OUT=/tmp/gpu-rehearsal TISDISS_GPU_DEVICE=cpu TISDISS_GPU_PRECISION=fp32 TISDISS_GPU_WORKERS=1 \
#     TISDISS_GPU_WHEELS=none TISDISS_GPU_VALID=4 bash benchmarks/gpu_campaign.sh 1 2
set -euo pipefail
minutes=${1:-7}
batch=${2:-128}
lr=${3:-0.002}
out=${OUT:?set OUT: the folder whose files come back}
device=${TISDISS_GPU_DEVICE:-cuda}
precision=${TISDISS_GPU_PRECISION:-bf16}
workers=${TISDISS_GPU_WORKERS:-12}
init=${TISDISS_GPU_INIT:-models/weights/tisdiss-small-8k.safetensors}
data=${TISDISS_GPU_DATA:-.train/speech8k}
wheels=${TISDISS_GPU_WHEELS:-.whl}
valid=${TISDISS_GPU_VALID:-200}
run="$out/run"
export PYTHONUNBUFFERED=1

if compgen -G "$wheels/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$wheels"/*.whl
fi
# The bare tree has no installed package: `tisdiss_models` is the models/ folder (pyproject's package-dir).
mkdir -p /tmp/site && ln -sfn "$PWD/models" /tmp/site/tisdiss_models
export PYTHONPATH="/tmp/site:$PWD"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

phase1=$(python3 -c "print(round($minutes * 0.75, 2))")
phase2=$(python3 -c "print(round($minutes - $phase1, 2))")
began=$(date +%s)
python3 -m tisdiss_cli train --recipe speech8k --data "$data" --run "$run" --init-from "$init" --quiet \
  --set loss=l1+3 --set model.band_split=bandsplit --set model.n_fft=256 --set model.hop_length=128 \
  --set model.band_mask=true --set model.band_norm=utterance --set model.n_re=2 \
  --set data.mixing.segment_seconds=4.0 --set "data.valid_size=$valid" --set "data.num_workers=$workers" \
  --set "data.epoch_size=$((batch * 40))" --set "optim.batch_size=$batch" --set "optim.lr=$lr" \
  --set optim.warmup_steps=100 --set optim.plateau_patience=1000000 --set optim.early_stop=1000000 \
  --set "device=$device" --set "precision=$precision" --set save_every_steps=50 --set keep_best=2 \
  --set "optim.max_minutes=$phase1"
cp "$run/checkpoints/last.pt" "$out/constant-last.pt"

# Phase 2: the decay, over as many steps as phase 1's pace fits into the time left: the median
# logged pace, or before any is logged phase 1's wall time per step (start-up included).
read -r start decay < <(python3 - "$run/metrics.jsonl" "$phase2" "$(($(date +%s) - began))" <<'EOF'
import json, sys
events = [json.loads(line) for line in open(sys.argv[1])]
step = max(e.get("step", 0) for e in events)
paces = sorted(e["sec_per_step"] for e in events if e.get("event") == "train")[-10:]
pace = paces[len(paces) // 2] if paces else float(sys.argv[3]) / max(step, 1)
print(step, max(1, int(float(sys.argv[2]) * 60 * 0.85 / pace)))
EOF
)
echo "phase 2: decay from step $start over $decay steps"
python3 -m tisdiss_cli train --resume --run "$run" --quiet \
  --set 'optim.schedule="wsd"' --set "optim.decay_start_step=$start" --set "optim.decay_steps=$decay" \
  --set "optim.max_steps=$((start + decay))" --set "optim.max_minutes=$(python3 -c "print($phase2 + 1)")"
ls -la "$run" "$run/checkpoints"
