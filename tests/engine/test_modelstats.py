import pytest

from blurtrack.engine.modelstats import network_stats


def test_counts_depthwise_conv_by_hand(test_bundle):
    # unsharp mask: Conv weight [3, 1, 3, 3] (group 3) on 255x255 -> 3*255*255 outputs x 9 MACs
    stats = network_stats(test_bundle / "deblur.onnx")
    assert stats["gflops"] == pytest.approx(2 * 3 * 255 * 255 * 9 / 1e9)
    assert stats["params"] == 27 + 2  # the kernel plus the two clip bounds


def test_counts_a_weight_fed_as_input(test_bundle):
    # the search net correlates 5 channels of 31x31 with 7x7 template kernels given as an input
    stats = network_stats(test_bundle / "search.onnx")
    features = 5 * 255 * 255 * 27  # 3x3 conv, 3 -> 5 channels, on 255x255
    correlation = 5 * 25 * 25 * 49  # depthwise 7x7 on 31x31 -> 25x25
    windows = 2 * correlation  # local sums of s and s^2 for the normalisation
    assert stats["gflops"] == pytest.approx(2 * (features + correlation + windows) / 1e9)
