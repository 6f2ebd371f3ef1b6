"""Pair settings the training-data tests share."""

from blurtrack.models.tracker.data import PairConfig

# no augmentation, no negatives, the search centred on the target: the box is known exactly
PLAIN = PairConfig(
    neg_prob=0.0,
    template_shift=0.0,
    template_scale=0.0,
    search_shift=0.0,
    search_scale=0.0,
    track_centre_prob=0.0,
    search_blur_prob=0.0,
    template_blur_prob=0.0,
    color_prob=0.0,
    grey_prob=0.0,
)
