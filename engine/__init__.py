"""blurtrack engine: crops, anchors, the Siamese tracker, the deblur stage and the runtimes.

Never imports `service` or `models`; never needs torch.
"""
