"""Siamese RPN tracker networks (EfficientNet-Lite0 + ECA, no-ECA ablation, AlexNet baseline),
their training pairs, anchor targets, loss, training loop and scale calibration.

Recipe (CPU, one thread; see models/configs/tracker*.json):
    python -m blurtrack.models.train --config models/configs/tracker.json --out /tmp/blurtrack-train/tracker \
        --budget-minutes 66 --seed 0
    python -m blurtrack.models.export --checkpoint /tmp/blurtrack-train/tracker/best.pt \
        --out /tmp/blurtrack-train/bundle-effnet-eca --calibrate-scale \
        --tracker-json '{"window_influence": ..., "penalty_k": ..., "lr": ...}'
    blurtrack tune --bundle /tmp/blurtrack-train/bundle-effnet-eca --apply   # settings chosen on DEV
With "deblur_input": {"bundle": ...} in the config (tracker_deblur_input.json) the tracker trains on
crops after that bundle's deblur gate and network (models/tracker/deblur_input.py).
Training renders (and caches) synthetic TRAIN / DEV sequences with models.synth; the DEV ones
only select the checkpoint and calibrate the box size, the real clips are never used.

Modules import torch: import them explicitly (models.tracker.net, models.tracker.training, ...).
"""
