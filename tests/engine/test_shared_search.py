"""One search network per pipeline on MindSpore Lite: the converted parts (the shared features, a
head per target) give exactly the whole network's outputs on real frames, targets take turns on
the shared features, and trackers follow the same path as with a whole network each."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from blurtrack.engine.errors import BlurtrackError
from blurtrack.engine.geometry import context_size, crop_square
from blurtrack.engine.manifest import load_bundle
from blurtrack.engine.otb import find_sequences
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime.mslite.backend import MindSporeLiteBackend
from blurtrack.engine.runtime.mslite.graph import split_search
from blurtrack.engine.runtime.onnxruntime_backend import OnnxRuntimeBackend
from blurtrack.engine.runtime.search import PerTargetSearch, SplitSearch
from blurtrack.models.evaluation.runner import run_sequence
from tests.engine.onnx_models import make_conv_net
from tests.engine.test_shipped_bundles import SHIPPED, assert_close

BUNDLE = "blurtrack-effnet-eca"


@pytest.fixture(scope="module")
def clips(shared):
    return find_sequences(shared / "data" / "real")


def target_crops(seq, manifest, every: int = 15):
    """The template crop of the first frame's box and search crops around it of every `every`th frame."""
    first = seq.read_frame(0)
    x, y, w, h = seq.init_box
    centre, mean = (x + w / 2, y + h / 2), first.mean((0, 1))
    side = context_size(w, h, manifest.tracker.context_amount)
    template = manifest.preprocess.to_input(crop_square(first, centre, side, manifest.tracker.exemplar_size, mean))
    scale = manifest.tracker.instance_size / manifest.tracker.exemplar_size
    searches = [
        manifest.preprocess.to_input(crop_square(seq.read_frame(i), centre, side * scale, manifest.tracker.instance_size, mean))
        for i in range(0, len(seq), every)
    ]
    return template, searches


@pytest.mark.parametrize("name", SHIPPED)
def test_the_parts_give_the_whole_networks_outputs_on_real_frames(name, clips, mslite_runtime):
    # The same Lite kernels on the same operations, only cut into three models: bit for bit
    # (measured: max |difference| 0 on every frame of both clips, all three bundles).
    bundle = load_bundle(name)
    m = bundle.manifest
    ms = MindSporeLiteBackend(threads=1)
    template_net, split = ms.load(bundle.path(m.template.ms)), ms.load_search(bundle.path(m.search.ms), m.search_image_input)
    assert isinstance(split, SplitSearch)
    for seq in clips:
        template, searches = target_crops(seq, m)
        kernels = template_net.run({m.template_image_input: template})
        whole = ms.load(bundle.path(m.search.ms), weight_inputs=list(kernels))
        bound = split.for_target(kernels)
        for search in searches:
            want = whole.run({m.search_image_input: search, **kernels})
            got = bound(search)
            for key in want:
                np.testing.assert_array_equal(got[key], want[key])


def test_targets_take_turns_on_the_shared_features(clips, mslite_runtime):
    bundle = load_bundle(BUNDLE)
    m = bundle.manifest
    ms, ort = MindSporeLiteBackend(threads=1), OnnxRuntimeBackend(threads=1)
    template_net, split = ms.load(bundle.path(m.template.ms)), ms.load_search(bundle.path(m.search.ms), m.search_image_input)
    reference = ort.load(bundle.path(m.search.onnx))
    targets = []
    for seq in clips:
        template, searches = target_crops(seq, m)
        kernels = template_net.run({m.template_image_input: template})
        targets.append((kernels, split.for_target(kernels), searches))
    for step in range(min(len(t[2]) for t in targets)):
        for kernels, bound, searches in targets:  # frames of the two targets interleaved
            want = reference.run({m.search_image_input: searches[step], **kernels})
            got = bound(searches[step])
            for key in want:
                assert_close(got[key], want[key])


def test_trackers_share_the_parts_and_follow_the_path_of_a_network_each(clips, mslite_runtime):
    shared = Pipeline.from_bundle(BUNDLE, backend="mslite", threads=1)
    assert isinstance(shared.networks.search, SplitSearch)
    one_each = Pipeline.from_bundle(BUNDLE, backend="mslite", threads=1)
    search_file = one_each.bundle.path(one_each.bundle.manifest.search.ms)
    backend = one_each.backend
    one_each.networks.search = PerTargetSearch(
        lambda kernels: backend.load(search_file, weight_inputs=kernels), one_each.bundle.manifest.search_image_input
    )
    seq = clips[0]
    runs = [run_sequence(pipeline.new_tracker(), seq) for pipeline in (shared, one_each)]
    np.testing.assert_array_equal(np.asarray(runs[0].boxes), np.asarray(runs[1].boxes))


def test_a_bundle_converted_without_the_parts_gives_each_target_a_whole_network(tmp_path, clips, caplog, mslite_runtime):
    source = load_bundle(BUNDLE)
    copy = tmp_path / BUNDLE
    shutil.copytree(source.root, copy, ignore=shutil.ignore_patterns("search.*.ms*", "*.npz"))
    with caplog.at_level(logging.WARNING):
        pipeline = Pipeline.from_bundle(copy, backend="mslite", threads=1)
    assert isinstance(pipeline.networks.search, PerTargetSearch)
    assert "blurtrack models convert" in caplog.text
    tracker = pipeline.new_tracker()
    seq = clips[0]
    tracker.init(seq.read_frame(0), tuple(seq.init_box))
    assert tracker.track(seq.read_frame(1)).state == "tracking"


def test_a_kernel_that_is_more_than_a_convolution_weight_stops_the_split(tmp_path):
    # zf is both the correlation's weight and added to the correlation's output: no cut separates
    # the target's kernels from the image's features there.
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["search", "zf"], ["corr"], group=2, kernel_shape=[3, 3]),
            helper.make_node("ReduceMean", ["zf"], ["zf_mean"], keepdims=0),
            helper.make_node("Add", ["corr", "zf_mean"], ["cls"]),
        ],
        "search",
        [
            helper.make_tensor_value_info("search", TensorProto.FLOAT, [1, 2, 5, 5]),
            helper.make_tensor_value_info("zf", TensorProto.FLOAT, [2, 1, 3, 3]),
        ],
        [helper.make_tensor_value_info("cls", TensorProto.FLOAT, None)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(BlurtrackError, match="Add"):
        split_search(model, "search")
    with pytest.raises(BlurtrackError, match="no kernel inputs"):
        split_search(onnx.load(str(make_conv_net(tmp_path / "conv.onnx"))), "image")
