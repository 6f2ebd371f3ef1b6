"""Evaluation: the tracking metrics of ../shared/EVALUATION.md, a timed runner, the peer trackers
and the benchmark (OTB-layout data sets are read by blurtrack.engine.otb). Imports stay light
(numpy, opencv): matplotlib is loaded only when plots are drawn, and peer_worker.py must keep
importing nothing from blurtrack."""
