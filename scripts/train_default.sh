#!/usr/bin/env bash
# Reproduces the embedded default model (resources/default/xfavot-default.safetensors) from scratch:
# synthetic corpus -> JDC + content networks -> XFaVoT small -> HiFiGAN vocoder -> shipped fp16 file
# -> quality report. Every stage resumes where it stopped, so run it again after an interruption.
#
#   bash scripts/train_default.sh                 # CPU or the GPU that `auto` finds
#   WORK=/big/disk STEPS=20000 VOCODER_STEPS=100000 DEVICE=cuda bash scripts/train_default.sh
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${WORK:-work/default}
DEVICE=${DEVICE:-auto}
# the shipped model's numbers (resources/MODEL_CARD.md); raise them on a GPU to train further
STEPS=${STEPS:-1222}            # XFaVoT training steps (batch 8)
AUX_STEPS=${AUX_STEPS:-800}
VOCODER_STEPS=${VOCODER_STEPS:-2000}  # multi-resolution STFT loss only; the GAN losses start at step 2000
X="${XFAVOT:-xfavot}"
mkdir -p "$WORK"

# 1. corpus: 128 speakers (paired, audio-only, image-only; 13 val + 13 test speakers held out)
$X data synth --speakers 128 --utts 40 --faces 40 --seed 0 --out "$WORK/corpus"
# 2. F0 (JDC) and content (CTC) networks on the training speakers
[ -f "$WORK/aux.safetensors" ] || $X train-aux --data "$WORK/corpus" --preset small --steps "$AUX_STEPS" \
    --device "$DEVICE" --out "$WORK/aux.safetensors"
# 3. the model
RESUME=""; [ -f "$WORK/run/run.json" ] && RESUME="--resume"
$X train --data "$WORK/corpus" --preset small --steps "$STEPS" --aux "$WORK/aux.safetensors" --device "$DEVICE" \
    --out "$WORK/run" --checkpoint-every 50 --sample-every 100 $RESUME
# 4. the neural vocoder on the same mels
RESUME=""; [ -f "$WORK/vocoder.safetensors.train.safetensors" ] && RESUME="--resume"
$X train-vocoder --data "$WORK/corpus" --steps "$VOCODER_STEPS" --device "$DEVICE" --out "$WORK/vocoder.safetensors" $RESUME
# 5. the shipped file: EMA weights + JDC + gender estimators + vocoder, fp16
LATEST="$WORK/run/$(python -c 'import json,sys; print(json.load(open(sys.argv[1]))["latest"])' "$WORK/run/run.json")"
$X attach-vocoder --checkpoint "$LATEST" --vocoder "$WORK/vocoder.safetensors" --out "$WORK/with-vocoder.safetensors"
# the vocoder the app uses by default ("auto") is the one that resynthesises held-out speech closer
# to the original (Resemblyzer d-vector similarity): the neural one, or Griffin-Lim while it lags
python - "$WORK/with-vocoder.safetensors" "$WORK/vocoder.safetensors" "$WORK/corpus" <<'PY'
import json, sys, torch
from core import checkpoint
from training.data.datasets import load_synthetic
from training.vocoder import evaluate_vocoder
model, vocoder, corpus = sys.argv[1:]
comparison = evaluate_vocoder(vocoder, load_synthetic(corpus), clips=16)
print(json.dumps(comparison, indent=1))
checkpoint.export_inference(model, "resources/default/xfavot-default.safetensors", dtype=torch.float16,
                            meta={"name": "XFaVoT default (small)", "preferred_vocoder": comparison["preferred"],
                                  "vocoder_comparison": comparison["by_vocoder"]})
PY
# 6. the quality report (resources/MODEL_CARD.md quotes it)
$X eval --corpus "$WORK/corpus" --out "$WORK/report"
