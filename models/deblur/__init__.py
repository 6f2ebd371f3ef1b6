"""DeblurGAN-v2-style deblurrer (light FPN on a MobileNetV2 encoder): networks, training, export.

Import torch-dependent modules explicitly (models.deblur.net, models.deblur.train, ...).
"""
