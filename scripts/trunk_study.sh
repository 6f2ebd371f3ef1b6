#!/usr/bin/env bash
# The issue's optional feature reuse, decided by measurement: two trackers trained from their
# initial weights with the same budget, side by side (one thread each), then tuned and confirmed
# the way fine-tuning rounds are (scripts/finetune_round.sh), both with deblur off so the trunk is
# the only difference:
#   tracker                the shipped design: EfficientNet-Lite0 + ECA, ImageNet init
#   tracker_deblur_encoder the deblurrer's own frozen MobileNetV2 encoder (models/tracker/backbones.py),
#                          whose features a reusing pipeline would get from the deblurrer for free
# Nothing here touches models/weights; results land in OUT (tune-*.json, confirm-*.json).
#
#   scripts/trunk_study.sh train   OUT SEED MINUTES   # e.g. /tmp/trunks 9 50
#   scripts/trunk_study.sh export  OUT
#   scripts/trunk_study.sh tune    OUT                # the DEV grid, each candidate's settings applied
#   scripts/trunk_study.sh confirm OUT                # each candidate at its settings on the CONFIRM set
#   scripts/trunk_study.sh stats   OUT                # GFLOPs per call: the networks, and the trunk's share
set -euo pipefail
{ # one group, read before it runs (as finetune_round.sh)
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BT=.venv/bin/blurtrack
source scripts/round_lib.sh
stage=${1:?stage: train, export, tune, confirm or stats}
out=${2:?OUT folder, outside the repository}
mkdir -p "$out"
CONFIGS="tracker tracker_deblur_encoder"

case $stage in
train)
  seed=${3:?SEED}; minutes=${4:?MINUTES}
  render_training_data
  for c in $CONFIGS; do
    $PY -m models.train --config "models/configs/$c.json" --seed "$seed" --budget-minutes "$minutes" \
        --out "$out/$c" > "$out/$c.log" 2>&1 &
  done
  wait
  ;;
export)
  tj='{"window_influence": 0.02, "penalty_k": 0.15, "lr": 0.38}'  # a start; `tune` picks the final ones
  for c in $CONFIGS; do
    rm -rf "$out/bundle-$c"
    $PY -m models.export --checkpoint "$out/$c/last.pt" --out "$out/bundle-$c" --calibrate-scale --tracker-json "$tj"
    $BT models convert "$out/bundle-$c"
  done
  ;;
tune)
  for c in $CONFIGS; do
    $BT tune --bundle "$out/bundle-$c" --deblur off --threads 1 $GRID --out "$out/tune-$c.json" --apply \
        > "$out/tune-$c.log" 2>&1 &
  done
  wait
  ;;
confirm)
  render_confirm
  for c in $CONFIGS; do
    confirm_one "$out/bundle-$c" off "$out/confirm-$c.json" "$out/confirm-$c.log" &
  done
  wait
  ;;
stats)
  for c in $CONFIGS; do $BT models stats "$out/bundle-$c"; done
  # the trunk alone: what reuse would save where the deblurrer runs on the crop anyway
  $PY -c "
import json, torch
from models.deblur.net import count_flops
from models.tracker.net import build_tracker
torch.set_num_threads(1)
for c in '$CONFIGS'.split():
    net = build_tracker({**json.load(open(f'models/configs/{c}.json'))['net'], 'pretrained': False})
    print(f'{c}: trunk {count_flops(net.backbone, (1, 3, 255, 255)):.3f} GFLOPs on the search crop, '
          f'{count_flops(net.backbone, (1, 3, 127, 127)):.3f} on the template')"
  ;;
*)
  echo "unknown stage $stage: use train, export, tune, confirm or stats" >&2; exit 2
  ;;
esac
}; exit
