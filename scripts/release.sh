#!/usr/bin/env bash
# Rebuild the released model end to end and put it in the package (speechrnn/models/):
# teachers -> distilled student (both on train+validation) -> float + int8 ONNX (checked) ->
# thresholds -> anchors -> evaluation on the test split -> release.json -> model card figures.
#   scripts/release.sh            # CPU: 70 to 110 minutes on two cores (trainer=cpu_ddp)
#   TRAINER=trainer=gpu scripts/release.sh
#   SMOKE=1 CORPUS=/tmp/tiny DEST=/tmp/models CARD=/tmp/card.md scripts/release.sh   # seconds
# Re-running reuses the runs already finished under WORK.
set -euo pipefail
cd "$(dirname "$0")/.."

# The recipe. RECIPE: Hydra overrides of every run (teachers and student); STUDENT: the
# student's own; TEACHERS: the teachers' seeds, one default-recipe run each (empty: no
# distillation, the student trains alone). Today's best per-clip recipe (docs/training.md):
RECIPE="${RECIPE:-data.fit_on=train+validation}"
STUDENT="${STUDENT-optim.mixup=0.2}"
TEACHERS="${TEACHERS-0 1 2}"

NAME="${NAME:-gsc12-v1}"
CORPUS="${CORPUS:-../shared/gsc_real_dev}"
TRAINER="${TRAINER:-trainer=cpu_ddp}"        # trainer=gpu on a GPU
EVAL="${EVAL:-}"                             # speechrnn-eval overrides (longform.duration=...)
WORK="${WORK:-runs/release/$NAME}"
DEST="${DEST:-speechrnn/models}"
CARD="${CARD:-docs/model-card.md}"
BIN="${BIN:-$PWD/.venv/bin}"
if [ "${SMOKE:-0}" = 1 ]; then  # tiny settings: proves the steps, not a model
  RECIPE="$RECIPE model=lstm_small trainer.max_epochs=1 trainer.progress_bar=false"
  TEACHERS="${TEACHERS:+0 1}"
  EVAL="$EVAL longform.duration=60"
fi

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
train() {  # train RUN_DIR OVERRIDES...: once; a finished run (metrics.json) is kept
  local run="$1"; shift
  if [ -f "$run/metrics.json" ]; then echo "already trained: $run"; return; fi
  # shellcheck disable=SC2086
  "$BIN/speechrnn-train" data.root="$CORPUS" $TRAINER $RECIPE "$@" run_dir="$run" evaluate=false
}
mkdir -p "$WORK" "$DEST"

TEACHING=()
if [ -n "$TEACHERS" ]; then
  for seed in $TEACHERS; do
    step "Teacher seed=$seed -> $WORK/teachers/$seed"
    train "$WORK/teachers/$seed" seed="$seed"
  done
  TEACHING=(distil.teachers="$WORK/teachers")
fi
step "Student -> $WORK/student"
# shellcheck disable=SC2086
train "$WORK/student" $STUDENT "${TEACHING[@]}"

step "Standalone weights, float and int8 ONNX (checked on the test split) -> $WORK"
"$BIN/python" scripts/release.py weights "$WORK/student/checkpoints/last.ckpt" "$WORK/$NAME.pt"
"$BIN/speechrnn-export" ckpt_path="$WORK/$NAME.pt" out="$WORK/$NAME.onnx" quantize=int8 \
  heldout="$CORPUS"

step "Thresholds and anchors"
THRESHOLDS=$("$BIN/python" scripts/release.py thresholds "$WORK/$NAME.pt")
echo "thresholds: $THRESHOLDS"
"$BIN/python" scripts/release.py anchors "$WORK/$NAME.pt" "$CORPUS" --splits train,validation

step "Evaluation of the int8 model: test split and streaming -> $WORK/report"
# shellcheck disable=SC2086
"$BIN/speechrnn-eval" ckpt_path="$WORK/$NAME.int8.onnx" data.root="$CORPUS" \
  streaming=true report_dir="$WORK/report" $EVAL

step "Into the package -> $DEST"
rm -f "$DEST"/*.onnx "$DEST"/*.pt "$DEST"/*.npz "$DEST"/release.json
cp "$WORK/$NAME.int8.onnx" "$WORK/$NAME.pt" "$WORK/$NAME.anchors.npz" "$DEST/"
"$BIN/python" scripts/release.py manifest "$DEST" "$NAME" --metrics "$WORK/report/metrics.json" \
  --recipe "$RECIPE | student: $STUDENT | teachers: ${TEACHERS:-none} | $TRAINER" \
  --thresholds "$THRESHOLDS" \
  --command "scripts/release.sh (NAME=$NAME CORPUS=$CORPUS)"
"$BIN/python" scripts/release.py card "$DEST/release.json" "$CARD"
ls -l "$DEST"
echo "released $NAME: $DEST/release.json; figures in $CARD"
