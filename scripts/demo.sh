#!/usr/bin/env bash
# speechrnn end to end, offline: synthetic corpus -> training -> report -> predictions -> ONNX.
#   scripts/demo.sh [--quick] [--gpu|--cpu] [--out DIR]
# Re-running reuses what is already there (.venv, corpus, trained run, ONNX file).
set -euo pipefail
cd "$(dirname "$0")/.."

QUICK=0
DEVICE=auto
OUT=demo_out
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --gpu) DEVICE=gpu ;;
    --cpu) DEVICE=cpu ;;
    --out) OUT="$2"; shift ;;
    -h|--help) sed -n '2,4p' "$0" | cut -c3-; exit 0 ;;
    *) echo "error: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "Python environment (.venv)"
source scripts/venv.sh
STAMP=.venv/.speechrnn-installed
if [ ! -f "$STAMP" ] || ! cmp -s pyproject.toml "$STAMP"; then
  install_speechrnn
  cp pyproject.toml "$STAMP"
else
  echo "speechrnn already installed in .venv"
fi
BIN="$PWD/.venv/bin"

step "espeak-ng (speaks the synthetic corpus)"
source scripts/debian.sh
need_commands espeak-ng=espeak-ng
espeak-ng --version | head -n 1

if [ "$QUICK" = 1 ]; then
  SPEAKERS=60; EPOCHS=30
else
  SPEAKERS=120; EPOCHS=30
fi
CORPUS="$OUT/corpus"
RUN="$OUT/run"
if [ "$DEVICE" = auto ]; then
  DEVICE=$("$VENV_PY" -c 'import torch; print("gpu" if torch.cuda.is_available() else "cpu")')
fi

step "Synthetic corpus: 35 words x $SPEAKERS espeak-ng speakers -> $CORPUS"
"$BIN/speechrnn-synth" "$CORPUS" --speakers "$SPEAKERS"

step "Training (model=lstm_small with an 8-channel stem, trainer=$DEVICE, $EPOCHS epochs) -> $RUN"
if [ -f "$RUN/metrics.json" ]; then
  echo "already trained: $RUN/metrics.json"
else
  rm -rf "$RUN"
  "$BIN/speechrnn-train" data=synthetic data.root="$CORPUS" model=lstm_small trainer="$DEVICE" \
    model.conv_channels=8 model.conv_stride=3 trainer.max_epochs="$EPOCHS" optim.lr=1e-2 \
    augment.speed=0.1 run_dir="$RUN"
fi
CKPT=$("$VENV_PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["tested_checkpoint"])' \
  "$RUN/metrics.json")

step "Evaluation report (test split, unseen speakers) -> $RUN/report"
"$VENV_PY" - "$RUN/report/metrics.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
print(f"test accuracy {m['accuracy']:.4f} on {m['clips']} clips of unseen speakers "
      f"(top-3 {m['top3_accuracy']:.4f}, macro F1 {m['macro']['f1']:.4f})")
EOF

step "Held-out clips and a long recording with several commands"
"$VENV_PY" - "$CORPUS" "$OUT" <<'EOF'
import shutil, sys
from pathlib import Path
import numpy as np, soundfile as sf
corpus, out = Path(sys.argv[1]), Path(sys.argv[2])
tests = (corpus / "testing_list.txt").read_text().split()
clips = out / "clips"
shutil.rmtree(clips, ignore_errors=True)
clips.mkdir()
picked = {}
for rel in tests:
    word = rel.split("/")[0]
    if word in ("yes", "no", "stop", "go", "left", "right") and word not in picked:
        picked[word] = rel
        shutil.copy(corpus / rel, clips / f"{word}.wav")
def spoken(rel):  # the word without the clip's silent padding
    wave = sf.read(corpus / rel, dtype="float32")[0]
    loud = np.flatnonzero(np.abs(wave) > 1e-3)
    return wave[loud[0] : loud[-1] + 1]
pieces = [np.zeros(8000, np.float32)]
for word in ("yes", "stop", "go", "left"):
    pieces += [spoken(picked[word]), np.zeros(16000, np.float32)]
speech = np.concatenate(pieces + [np.zeros(8000, np.float32)])
hiss = 0.003 * np.random.default_rng(0).standard_normal(speech.size).astype(np.float32)
sf.write(out / "long.wav", speech + hiss, 16000, subtype="PCM_16")  # words over steady noise
print(f"{len(picked)} clips in {clips}; {out / 'long.wav'} says yes, stop, go, left")
EOF

step "speechrnn-predict with the checkpoint"
"$BIN/speechrnn-predict" "$CKPT" "$OUT/clips" "$OUT/long.wav" --top-k 2 | tee "$OUT/predict_ckpt.txt"

step "ONNX export (front end inside the graph) -> $OUT/model.onnx"
if [ ! -f "$OUT/model.onnx" ] || [ "$CKPT" -nt "$OUT/model.onnx" ]; then
  "$BIN/speechrnn-export" ckpt_path="$CKPT" out="$OUT/model.onnx" audio="$OUT/clips"
else
  echo "already exported: $OUT/model.onnx"
fi

step "speechrnn-predict with the ONNX model (no torch imported)"
"$BIN/speechrnn-predict" "$OUT/model.onnx" "$OUT/clips" "$OUT/long.wav" --top-k 2 \
  | tee "$OUT/predict_onnx.txt"
labels() { awk '{ if ($0 ~ /^ /) print $5; else print $1, $2 }' "$1"; }  # file label / detections
if diff -q <(labels "$OUT/predict_ckpt.txt") <(labels "$OUT/predict_onnx.txt") >/dev/null; then
  echo "checkpoint and ONNX predictions agree"
else
  echo "error: checkpoint and ONNX predictions differ" >&2
  exit 1
fi

step "Done"
cat <<EOF
corpus         $CORPUS
run dir        $RUN (checkpoints, logs, metrics.json)
report         $RUN/report/report.html
predictions    $OUT/predict_ckpt.txt, $OUT/predict_onnx.txt
ONNX model     $OUT/model.onnx

Try it live (a page at http://127.0.0.1:8000/ that listens to the microphone):
EOF
echo "$BIN/speechrnn-serve $OUT/model.onnx"
