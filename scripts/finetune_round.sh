#!/usr/bin/env bash
# One fine-tuning round for all three trackers with the same extra budget, and for the deblurrer,
# from the committed bundles: train (side by side, one thread each), export + convert, tune on the
# synthetic DEV split. Nothing here touches models/weights: the candidates land in
# OUT/bundle-<config>, and a candidate replaces its shipped bundle when its best DEV objective in
# OUT/tune-<config>.json beats the shipped bundle's (benchmarks/tuning/<bundle>.json, same split
# and grid; MODEL_CARD.md). The ECA tracker makes two candidates: bundle-tracker with the shipped
# deblurrer and bundle-tracker_newdeblur with this round's; each gets its own gate, and the one
# with the better gated DEV objective is the one compared with the shipped bundle.
#
#   scripts/finetune_round.sh train  OUT SEED MINUTES   # e.g. /tmp/ft3 2 85 (round 3)
#   scripts/finetune_round.sh export OUT
#   scripts/finetune_round.sh tune   OUT
#   scripts/finetune_round.sh gate   OUT BUNDLE        # deblur-gate threshold of an ECA candidate -> OUT/gate-<name>.json
#   scripts/finetune_round.sh select OUT               # the shipping rule applied: what to copy into models/weights
#   scripts/finetune_round.sh vote   OUT CONFIG=BUNDLE...  # box-voting IoU, e.g. tracker=OUT/bundle-tracker
#     (not part of the shipping rule: box voting was tried in round 4 and withdrawn, MODEL_CARD.md)
set -euo pipefail
{ # the whole script is one group, read before it runs: editing this file during a long stage is safe
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BT=.venv/bin/blurtrack
stage=${1:?stage: train, export, tune, gate, select or vote}
out=${2:?OUT folder, outside the repository}
mkdir -p "$out"

# config -> the committed bundle it starts from; the ECA bundle alone carries the deblurrer
declare -A BUNDLE=([tracker]=blurtrack-effnet-eca [tracker_noeca]=blurtrack-effnet-noeca [tracker_alexnet]=blurtrack-alexnet)
declare -A DEBLUR=([tracker]=bundle [tracker_noeca]=off [tracker_alexnet]=off [tracker_newdeblur]=bundle)
SHIPPED_DEBLUR=models/weights/blurtrack-effnet-eca/deblur.onnx
GRID="--penalty-k 0.08,0.15,0.25 --window-influence 0.02,0.1 --lr 0.25,0.38,0.5"
GATE="0,75,150,300,600,1e9"  # 0 never deblurs, 1e9 always
VOTE="0,0.35,0.5,0.65,0.8"  # box voting: 0 keeps the best anchor's box alone

# the bundle's tuned tracker settings as `blurtrack tune` flags, so a later stage keeps them fixed
chosen_settings() {
  $PY -c "
import sys; from engine.manifest import load_bundle
t = load_bundle(sys.argv[1]).manifest.tracker
print(f'--penalty-k {t.penalty_k} --window-influence {t.window_influence} --lr {t.lr}')" "$1"
}

case $stage in
train)
  seed=${3:?SEED}; minutes=${4:?MINUTES}
  # render the synthetic training and DEV-pair sequences once, not by three runs at the same time
  $PY -c "
from engine.data.synth import make_split
make_split('train', '/tmp/blurtrack-train/synth-train', n_sequences=100, seed=0, n_frames=60)
make_split('dev', '/tmp/blurtrack-train/synth-dev-train', n_sequences=8, seed=0, n_frames=60)"
  for c in "${!BUNDLE[@]}"; do
    $PY -m models.train --config "models/configs/$c.json" --init "models/weights/${BUNDLE[$c]}" \
        --seed "$seed" --set train.lr=0.0003 --budget-minutes "$minutes" --out "$out/$c" > "$out/$c.log" 2>&1 &
  done
  # the deblurrer from its shipped weights, at a third of its first run's learning rate; the
  # step count is out of reach so the wall-clock budget sets the schedule
  $PY -m models.train --config models/configs/deblur.json --init "$SHIPPED_DEBLUR" --seed "$seed" \
      --set optim.lr=0.0001 --set total_steps=1000000 --budget-minutes "$minutes" --out "$out/deblur" > "$out/deblur.log" 2>&1 &
  wait
  ;;
export)
  tj='{"window_influence": 0.02, "penalty_k": 0.15, "lr": 0.38}'  # a start; `tune` picks the final ones
  # the new deblurrer: ONNX + PSNR on held-out TEST crop pairs (reported, not used to choose)
  $PY -m models.deblur.export --checkpoint "$out/deblur/last.pt" --out "$out/deblur/export" --pairs 96
  for c in "${!BUNDLE[@]}"; do
    extra=()
    if [ "${DEBLUR[$c]}" = bundle ]; then extra=(--deblur "$SHIPPED_DEBLUR"); fi
    rm -rf "$out/bundle-$c"
    $PY -m models.export --checkpoint "$out/$c/last.pt" --out "$out/bundle-$c" --calibrate-scale --tracker-json "$tj" "${extra[@]}"
    $BT models convert "$out/bundle-$c"
  done
  # the same ECA tracker with the new deblurrer: only the deblur files differ (same manifest)
  rm -rf "$out/bundle-tracker_newdeblur"
  cp -r "$out/bundle-tracker" "$out/bundle-tracker_newdeblur"
  cp "$out/deblur/export/deblur.onnx" "$out/bundle-tracker_newdeblur/deblur.onnx"
  $BT models convert "$out/bundle-tracker_newdeblur"
  ;;
tune)
  # one thread each, all four side by side; rankings in OUT/tune-<config>.json
  for c in "${!DEBLUR[@]}"; do
    $BT tune --bundle "$out/bundle-$c" --deblur "${DEBLUR[$c]}" --threads 1 $GRID --out "$out/tune-$c.json" --apply \
        > "$out/tune-$c.log" 2>&1 &
  done
  wait
  ;;
gate)
  # with the tracker settings `tune` chose, the threshold below which a search crop is deblurred
  bundle=${3:?BUNDLE: an ECA candidate, e.g. OUT/bundle-tracker (a name or folder)}
  $BT tune --bundle "$bundle" --deblur bundle --threads 2 $(chosen_settings "$bundle") \
      --blur-threshold "$GATE" --out "$out/gate-$(basename "$bundle").json" --apply
  ;;
select)
  $PY scripts/select_round.py "$out"
  ;;
vote)
  # with the settings and gate chosen before, the box-voting IoU of each bundle (one thread each,
  # side by side); CONFIG=BUNDLE pairs, where CONFIG picks the deblur mode (DEBLUR above)
  shift 2
  for pair in "$@"; do
    c=${pair%%=*}; bundle=${pair#*=}
    [ -n "${DEBLUR[$c]+set}" ] || { echo "vote: $pair: write CONFIG=BUNDLE, CONFIG one of ${!DEBLUR[*]}" >&2; exit 2; }
    $BT tune --bundle "$bundle" --deblur "${DEBLUR[$c]}" --threads 1 $(chosen_settings "$bundle") \
        --box-vote-iou "$VOTE" --out "$out/vote-$c.json" --apply > "$out/vote-$c.log" 2>&1 &
  done
  wait
  ;;
*)
  echo "unknown stage $stage: use train, export, tune, gate, select or vote" >&2; exit 2
  ;;
esac
}; exit
