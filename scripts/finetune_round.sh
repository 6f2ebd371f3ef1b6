#!/usr/bin/env bash
# One fine-tuning round for all three trackers with the same extra budget, and for the deblurrer,
# from the committed bundles: train (side by side, one thread each), export + convert, tune on the
# synthetic DEV split, then score each candidate at its chosen settings on the CONFIRM set (more
# DEV sequences that chose nothing). Nothing here touches models/weights: the candidates land in
# OUT/bundle-<config>. `select` applies the shipping rule (scripts/select_round.py, MODEL_CARD.md):
# a candidate replaces its shipped bundle when its CONFIRM objective beats the shipped bundle's
# (benchmarks/tuning/confirm/<bundle>.json, from `confirm-shipped`). The ECA tracker makes two
# candidates when the round trains a deblurrer: bundle-tracker with the shipped deblurrer and
# bundle-tracker_newdeblur with this round's; each gets its own gate, and the one with the better
# gated DEV objective is the one confirmed against the shipped bundle.
#
#   scripts/finetune_round.sh train  OUT SEED MINUTES [trackers]  # e.g. /tmp/ft3 2 85 (round 3);
#     `trackers`: leave the deblurrer out (its round-6 fine-tune gained nothing), so the three
#     trackers share the cores three ways, not four
#   scripts/finetune_round.sh export OUT
#   scripts/finetune_round.sh tune   OUT
#   scripts/finetune_round.sh aspect OUT               # each candidate's aspect-ratio pace (aspect_lr), after tune
#   scripts/finetune_round.sh gate   OUT BUNDLE        # deblur gate and strength of an ECA candidate -> OUT/gate-<name>.json
#   scripts/finetune_round.sh confirm OUT              # each candidate at its chosen settings on the CONFIRM set
#   scripts/finetune_round.sh confirm-shipped OUT      # the same for the shipped bundles -> benchmarks/tuning/confirm/
#     (again on each new kind of host: the same bundle tracks differently on other CPUs, engine/evaluation/host.py)
#   scripts/finetune_round.sh select OUT               # the shipping rule applied: what to copy into models/weights
#   scripts/finetune_round.sh vote   OUT CONFIG=BUNDLE...  # box-voting IoU, e.g. tracker=OUT/bundle-tracker
#     (not part of the shipping rule: box voting was tried in round 4 and withdrawn, MODEL_CARD.md)
set -euo pipefail
{ # the whole script is one group, read before it runs: editing this file during a long stage is safe
cd "$(dirname "$0")/.."
PY=.venv/bin/python
BT=.venv/bin/blurtrack
stage=${1:?stage: train, export, tune, aspect, gate, confirm, confirm-shipped, select or vote}
out=${2:?OUT folder, outside the repository}
mkdir -p "$out"

# config -> the committed bundle it starts from; the ECA bundle alone carries the deblurrer
declare -A BUNDLE=([tracker]=blurtrack-effnet-eca [tracker_noeca]=blurtrack-effnet-noeca [tracker_alexnet]=blurtrack-alexnet)
declare -A DEBLUR=([tracker]=bundle [tracker_noeca]=off [tracker_alexnet]=off [tracker_newdeblur]=bundle)
SHIPPED_DEBLUR=models/weights/blurtrack-effnet-eca/deblur.onnx
source scripts/round_lib.sh  # GRID, CONFIRM and the helpers both study scripts use
GATE="0,75,150,300,1e9"  # 0 never deblurs, 1e9 always (600 dropped in round 9: no round chose it)
STRENGTH="0.5,0.7,1"  # the deblurred crop's weight in what the search network sees (from round 9)
ASPECT="0,0.25,0.5,1"  # the box's aspect-ratio pace, relative to its size's (from stop 18)
VOTE="0,0.35,0.5,0.65,0.8"  # box voting: 0 keeps the best anchor's box alone

case $stage in
train)
  seed=${3:?SEED}; minutes=${4:?MINUTES}; only=${5:-all}
  [ "$only" = all ] || [ "$only" = trackers ] || { echo "train: 5th argument: trackers, or nothing" >&2; exit 2; }
  # render the synthetic training and DEV-pair sequences once, not by three runs at the same time
  render_training_data
  for c in "${!BUNDLE[@]}"; do
    $PY -m models.train --config "models/configs/$c.json" --init "models/weights/${BUNDLE[$c]}" \
        --seed "$seed" --set train.lr=0.0003 --budget-minutes "$minutes" --out "$out/$c" > "$out/$c.log" 2>&1 &
  done
  # the deblurrer from its shipped weights, at a third of its first run's learning rate; the
  # step count is out of reach so the wall-clock budget sets the schedule
  if [ "$only" = all ]; then
    $PY -m models.train --config models/configs/deblur.json --init "$SHIPPED_DEBLUR" --seed "$seed" \
        --set optim.lr=0.0001 --set total_steps=1000000 --budget-minutes "$minutes" --out "$out/deblur" > "$out/deblur.log" 2>&1 &
  fi
  wait
  ;;
export)
  tj='{"window_influence": 0.02, "penalty_k": 0.15, "lr": 0.38}'  # a start; `tune` picks the final ones
  # the new deblurrer, where the round trained one: ONNX + PSNR on held-out TEST crop pairs
  # (reported, not used to choose)
  if [ -f "$out/deblur/last.pt" ]; then
    $PY -m models.deblur.export --checkpoint "$out/deblur/last.pt" --out "$out/deblur/export" --pairs 96
  fi
  for c in "${!BUNDLE[@]}"; do
    extra=()
    if [ "${DEBLUR[$c]}" = bundle ]; then extra=(--deblur "$SHIPPED_DEBLUR"); fi
    rm -rf "$out/bundle-$c"
    $PY -m models.export --checkpoint "$out/$c/last.pt" --out "$out/bundle-$c" --calibrate-scale --tracker-json "$tj" "${extra[@]}"
    $BT models convert "$out/bundle-$c"
  done
  # the same ECA tracker with the new deblurrer: only the deblur files differ (same manifest)
  rm -rf "$out/bundle-tracker_newdeblur"
  if [ -f "$out/deblur/export/deblur.onnx" ]; then
    cp -r "$out/bundle-tracker" "$out/bundle-tracker_newdeblur"
    cp "$out/deblur/export/deblur.onnx" "$out/bundle-tracker_newdeblur/deblur.onnx"
    $BT models convert "$out/bundle-tracker_newdeblur"
  fi
  ;;
tune)
  # one thread each, all side by side; rankings in OUT/tune-<config>.json
  for c in "${!DEBLUR[@]}"; do
    [ -d "$out/bundle-$c" ] || continue  # no new deblurrer this round: no tracker_newdeblur
    $BT tune --bundle "$out/bundle-$c" --deblur "${DEBLUR[$c]}" --threads 1 $GRID --out "$out/tune-$c.json" --apply \
        > "$out/tune-$c.log" 2>&1 &
  done
  wait
  ;;
aspect)
  # with the tracker settings `tune` chose, how fast the box's aspect ratio follows (one thread
  # each, side by side); before `gate`, which keeps it
  for c in "${!DEBLUR[@]}"; do
    [ -d "$out/bundle-$c" ] || continue
    $BT tune --bundle "$out/bundle-$c" --deblur "${DEBLUR[$c]}" --threads 1 $(chosen_settings "$out/bundle-$c") \
        --aspect-lr "$ASPECT" --out "$out/aspect-$c.json" --apply > "$out/aspect-$c.log" 2>&1 &
  done
  wait
  ;;
gate)
  # with the tracker settings `tune` chose, the threshold below which a search crop is deblurred
  # and how strongly
  bundle=${3:?BUNDLE: an ECA candidate, e.g. OUT/bundle-tracker (a name or folder)}
  $BT tune --bundle "$bundle" --deblur bundle --threads 2 $(chosen_settings "$bundle") \
      --blur-threshold "$GATE" --deblur-strength "$STRENGTH" --out "$out/gate-$(basename "$bundle").json" --apply
  ;;
confirm)
  # after tune and gate: each candidate with the settings and gate they wrote into its manifest
  render_confirm
  for c in "${!DEBLUR[@]}"; do
    [ -d "$out/bundle-$c" ] || continue
    confirm_one "$out/bundle-$c" "${DEBLUR[$c]}" "$out/confirm-$c.json" "$out/confirm-$c.log" &
  done
  wait
  ;;
confirm-shipped)
  mkdir -p benchmarks/tuning/confirm
  render_confirm
  for c in "${!BUNDLE[@]}"; do
    b=${BUNDLE[$c]}
    confirm_one "models/weights/$b" "${DEBLUR[$c]}" "benchmarks/tuning/confirm/$b.json" "$out/confirm-shipped-$b.log" &
  done
  # not for shipping: the ECA bundle with deblur off, the ladder's ECA step against no-ECA
  confirm_one models/weights/blurtrack-effnet-eca off benchmarks/tuning/confirm/blurtrack-effnet-eca-no-deblur.json \
      "$out/confirm-shipped-eca-no-deblur.log" &
  wait
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
  echo "unknown stage $stage: use train, export, tune, aspect, gate, confirm, confirm-shipped, select or vote" >&2; exit 2
  ;;
esac
}; exit
