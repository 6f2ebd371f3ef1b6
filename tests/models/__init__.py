"""Tests of the tools (blurtrack.models, scripts/): the blur synthesiser, evaluation and benchmarking
and the eval / bench / tune commands, and training and export (those skip without the [train] extra)."""
