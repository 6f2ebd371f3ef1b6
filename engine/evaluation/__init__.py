"""Evaluation: OTB-layout data sets, the tracking metrics of ../shared/EVALUATION.md, a timed runner,
the peer trackers and the benchmark. Imports stay light (numpy, opencv): matplotlib is loaded only
when plots are drawn, and peer_worker.py must keep importing nothing from the engine."""
