"""INT8 post-training quantisation of a bundle's networks: calibration crops from the real training
clips (`calibration`), the measurements that choose each network's precision (`measure`), and
`blurtrack models quantize` (`command`). Building the INT8 files from the committed calibration
ranges is runtime-side (`blurtrack.engine.quantized`), so `blurtrack models convert` needs no data."""
