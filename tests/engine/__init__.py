"""Tests of the runtime engine (blurtrack.engine): geometry, anchors, the tracker, the deblur gate,
bundles, the OTB reader, the backends, and `blurtrack track`, which runs the engine on a video."""
