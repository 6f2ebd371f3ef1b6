"""blurtrack engine, the runtime: crops, anchors, the Siamese tracker, the deblur stage, the
pipeline, bundle manifests, the OTB-layout reader and the runtimes.

Never imports blurtrack.service, blurtrack.models or the tools; never needs torch
(tests/test_import_rules.py checks it).
"""
