"""The tracker end to end on the hand-made bundle: it follows, it says lost, it rejects bad input."""

import json
import shutil
from dataclasses import replace

import cv2
import numpy as np
import pytest

from blurtrack.engine.errors import (
    BackendUnavailableError,
    InvalidBoxError,
    InvalidFrameError,
    ModelNotFoundError,
    NotInitializedError,
)
from blurtrack.engine.frames import as_bgr, decode_image
from blurtrack.engine.geometry import Box, iou
from blurtrack.engine.manifest import load_bundle
from blurtrack.engine.pipeline import Pipeline
from blurtrack.engine.runtime import get_backend
from blurtrack.engine.runtime.base import ModelSession
from blurtrack.models.render import render_moving_target


@pytest.fixture(scope="module")
def pipeline(test_bundle):
    return Pipeline.from_bundle(test_bundle, backend="onnxruntime", threads=1)


@pytest.fixture(scope="module")
def mslite_pipeline(test_bundle, tmp_path_factory, mslite_runtime):
    from blurtrack.engine.runtime.mslite.convert import convert_bundle

    bundle = tmp_path_factory.mktemp("ms") / "bundle"
    shutil.copytree(test_bundle, bundle)
    convert_bundle(load_bundle(bundle))
    return Pipeline.from_bundle(bundle, backend="mslite", threads=1)


def run_sequence(tracker, seq):
    tracker.init(seq.frames[0], seq.boxes[0])
    return [tracker.track(frame) for frame in seq.frames[1:]]


def centre_error(a, b):
    (ax, ay), (bx, by) = Box(*a).center, Box(*b).center
    return float(np.hypot(ax - bx, ay - by))


@pytest.mark.parametrize("deblur", ["off", "on"])
def test_follows_a_moving_target(pipeline, deblur):
    seq = render_moving_target(60, step=(6.0, 3.0), seed=1)
    results = run_sequence(pipeline.new_tracker(deblur=deblur), seq)
    errors = [centre_error(r.box, gt) for r, gt in zip(results, seq.boxes[1:])]
    ious = [iou(Box(*r.box), Box(*gt)) for r, gt in zip(results, seq.boxes[1:])]
    # the target moves 6.7 px a frame and crosses 150+ px; a tracker that stood still would fail
    assert max(errors) < 12.0
    assert np.mean(ious) > 0.7
    assert all(r.state == "tracking" for r in results)
    assert all(r.deblurred == (deblur == "on") for r in results)
    assert set(results[0].timings) == {"crop", "deblur", "track", "post", "total"}


def tracker_config(pipeline, **update):
    """The bundle's tracker settings with `update` in place (for one tracker: the pipeline's stay)."""
    return pipeline.bundle.manifest.tracker.model_copy(update=update)


def test_box_voting_changes_the_box_and_still_follows(pipeline):
    seq = render_moving_target(40, step=(6.0, 3.0), seed=1)
    plain = run_sequence(pipeline.new_tracker(deblur="off"), seq)
    voted = run_sequence(pipeline.new_tracker(deblur="off", tracker_config=tracker_config(pipeline, box_vote_iou=0.5)), seq)
    # the neighbouring anchors' boxes differ from the best one, so their mean moves the box
    assert any(not np.allclose(a.box, b.box) for a, b in zip(plain, voted))
    ious = [iou(Box(*r.box), Box(*gt)) for r, gt in zip(voted, seq.boxes[1:])]
    assert np.mean(ious) > 0.7 and all(r.state == "tracking" for r in voted)
    # the setting was the one tracker's: the pipeline hands out the bundle's to the next one
    assert pipeline.new_tracker().cfg == pipeline.bundle.manifest.tracker and pipeline.bundle.manifest.tracker.box_vote_iou != 0.5


def test_aspect_lr_zero_keeps_the_first_boxs_aspect_ratio(pipeline):
    # The hand-made bundle regresses no offsets: its box is the winning anchor's, whose shape is
    # not the tall target's, so a tracker that follows w and h alike (at the lr set here; the
    # bundle's own is 0) changes the box's shape.
    seq = render_moving_target(30, step=(4.0, 2.0), seed=7, target=(30, 50))
    first_aspect, first_area = 30 / 50, 30 * 50

    def aspects_and_areas(aspect_lr):
        tracker = pipeline.new_tracker(deblur="off", tracker_config=tracker_config(pipeline, aspect_lr=aspect_lr, lr=0.5))
        results = run_sequence(tracker, seq)
        assert all(r.state == "tracking" for r in results)
        return np.array([r.box[2] / r.box[3] for r in results]), np.array([r.box[2] * r.box[3] for r in results])

    free_aspects, _ = aspects_and_areas(1.0)
    held_aspects, held_areas = aspects_and_areas(0.0)
    half_aspects, _ = aspects_and_areas(0.5)
    assert np.abs(free_aspects - first_aspect).max() > 0.05
    np.testing.assert_allclose(held_aspects, first_aspect, rtol=1e-6)
    # the size itself still follows the chosen boxes, and a middle pace lands in between
    assert np.abs(held_areas / first_area - 1).max() > 0.05
    assert np.abs(np.log(half_aspects / first_aspect)).max() < np.abs(np.log(free_aspects / first_aspect)).max()


@pytest.mark.parametrize("template_update", [0.0, 0.3])
def test_mslite_and_onnxruntime_track_alike(pipeline, mslite_pipeline, template_update):
    # Two different targets one after the other: the second template must replace the first
    # (Lite keeps a convolution weight fed as an input unless the model is rebuilt), and so must
    # an updated template.
    assert mslite_pipeline.describe()["backend"] == "mslite"
    config = tracker_config(pipeline, template_update=template_update, template_update_interval=5, template_update_score=0.0)
    for seed, size in ((12, (40, 40)), (13, (30, 50))):
        seq = render_moving_target(30, step=(6.0, 3.0), seed=seed, target=size)
        ort_results = run_sequence(pipeline.new_tracker(deblur="on", tracker_config=config), seq)
        ms_results = run_sequence(mslite_pipeline.new_tracker(deblur="on", tracker_config=config), seq)
        for a, b in zip(ort_results, ms_results):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            assert abs(a.score - b.score) < 1e-3
            assert a.state == b.state


def test_template_update_blends_the_newest_look_into_the_kernels(pipeline):
    seq = render_moving_target(12, step=(5.0, 2.0), seed=8)
    tracker, bound = updating_tracker(pipeline, interval=4, score=0.0)
    tracker.init(seq.frames[0], seq.boxes[0])
    first = bound[0]
    for frame in seq.frames[1:9]:
        tracker.track(frame)
    # rebound after frames 4 and 8 only, each time from the first frame's kernels and the newest look
    assert len(bound) == 3
    expected = pipeline.networks.template.run({"template": tracker._template(seq.frames[8], {})[0]})
    for name, kernel in bound[2].items():
        np.testing.assert_allclose(kernel, 0.75 * first[name] + 0.25 * expected[name], rtol=1e-5, atol=1e-6)
        assert not np.allclose(kernel, first[name])


def test_template_update_waits_for_a_confident_frame(pipeline):
    seq = render_moving_target(12, step=(5.0, 2.0), seed=8)
    tracker, bound = updating_tracker(pipeline, interval=1, score=1.0)
    results = run_sequence(tracker, seq)
    # no frame scores a full 1.0, so the first frame's template is the only one
    assert all(r.score < 1.0 for r in results) and len(bound) == 1


def updating_tracker(pipeline, interval: int, score: float):
    """A tracker with template update 0.25, and the list of kernels it binds its search network to."""
    config = tracker_config(pipeline, template_update=0.25, template_update_interval=interval, template_update_score=score)
    tracker = pipeline.new_tracker(deblur="off", tracker_config=config)
    bound: list[dict[str, np.ndarray]] = []
    tracker.nets = replace(tracker.nets, search=_Recording(tracker.nets.search, bound))
    return tracker, bound


class _Recording:
    """A search network that notes the kernels each target binds (the real network still runs)."""

    def __init__(self, search, bound: list):
        self.search, self.bound = search, bound

    def for_target(self, kernels):
        self.bound.append({k: np.array(v) for k, v in kernels.items()})
        return self.search.for_target(kernels)


def test_reports_lost_when_target_leaves_and_keeps_a_box(pipeline):
    seq = render_moving_target(25, step=(6.0, 3.0), seed=2, leave_after=10)
    results = run_sequence(pipeline.new_tracker(deblur="off"), seq)
    assert all(r.state == "tracking" for r in results[:8])
    assert all(r.state == "lost" for r in results[12:])
    assert all(r.score < 0.5 for r in results[12:])
    # while lost, the box stays where the target was last seen, inside the frame
    assert results[-1].box == results[12].box


def test_refinds_target_after_it_comes_back(pipeline):
    seq = render_moving_target(30, step=(0.0, 0.0), seed=3)
    tracker = pipeline.new_tracker(deblur="off")
    tracker.init(seq.frames[0], seq.boxes[0])
    empty = np.random.default_rng(0).integers(0, 40, seq.frames[0].shape, dtype=np.uint8)
    states = [tracker.track(empty).state for _ in range(5)]
    assert states[-1] == "lost"
    back = [tracker.track(frame) for frame in seq.frames[1:4]]
    assert back[-1].state == "tracking"
    assert centre_error(back[-1].box, seq.boxes[3]) < 8.0


def test_sessions_do_not_share_state(pipeline):
    a, b = render_moving_target(15, step=(5, 0), seed=4), render_moving_target(15, step=(0, 4), seed=5, start=(200, 20))
    ta, tb = pipeline.new_tracker(deblur="off"), pipeline.new_tracker(deblur="off")
    ta.init(a.frames[0], a.boxes[0])
    tb.init(b.frames[0], b.boxes[0])
    for fa, fb, ga, gb in zip(a.frames[1:], b.frames[1:], a.boxes[1:], b.boxes[1:]):
        assert centre_error(ta.track(fa).box, ga) < 12
        assert centre_error(tb.track(fb).box, gb) < 12


def test_deblur_auto_runs_only_on_blurry_crops(pipeline):
    seq = render_moving_target(3, seed=6)
    tracker = pipeline.new_tracker(deblur="auto")
    tracker.init(seq.frames[0], seq.boxes[0])
    assert tracker.track(seq.frames[1]).deblurred is False  # sharp noisy frame: high Laplacian variance
    smeared = cv2.blur(seq.frames[2], (15, 1))
    assert tracker.track(smeared).deblurred is True


def with_gate(pipeline, deblur, **policy):
    """A tracker behind its own deblur policy (the pipeline's shared one is left as it is)."""
    return pipeline.new_tracker(deblur=deblur, deblur_policy=pipeline.bundle.manifest.deblur_policy.model_copy(update=policy))


def test_rescue_looks_again_deblurred_and_keeps_the_surer_answer(pipeline):
    seq = render_moving_target(30, step=(6.0, 3.0), seed=7)
    plain = run_sequence(pipeline.new_tracker(deblur="off"), seq)
    # the blur gate shut: with rescue off, auto is the same as off, box for box and score for
    # score (the template too is the exemplar crop itself, not the centre of a search-sized one)
    shut = run_sequence(with_gate(pipeline, "auto", blur_threshold=0.0, rescue_score=0.0), seq)
    assert [(r.box, r.score) for r in shut] == [(r.box, r.score) for r in plain] and not any(r.deblurred for r in shut)

    # rescue above every score: each frame is also tracked deblurred, and the answer kept is the
    # one the tracker ranks higher (pscore) of the two it saw
    rescuing = with_gate(pipeline, "auto", blur_threshold=0.0, rescue_score=1.0)
    looks = []
    locate = rescuing._locate
    rescuing._locate = lambda *args: looks.append(locate(*args)) or looks[-1]
    rescuing.init(seq.frames[0], seq.boxes[0])
    kept_second, ious = 0, []
    for frame, truth in zip(seq.frames[1:], seq.boxes[1:]):
        looks.clear()
        result = rescuing.track(frame)
        assert len(looks) == 2 and result.deblurred and result.timings["deblur"] > 0
        first, second = looks
        surer = second if second.pscore > first.pscore else first
        assert result.score == surer.score
        kept_second += surer is second
        ious.append(iou(Box(*result.box), Box(*truth)))
    assert 0 < kept_second  # the deblurred look won some frames, so rescue changes the track
    assert np.mean(ious) > 0.7  # and it still follows the target

    # `off` never deblurs, whatever the gate says
    never = run_sequence(with_gate(pipeline, "off", rescue_score=1.0), seq)
    assert not any(r.deblurred for r in never)


def test_a_template_the_gate_passes_is_the_exemplar_crop_itself(pipeline):
    # auto with the gate shut must start from the very template `off` starts from (the centre of
    # a search-sized crop differs from the exemplar crop by a grey level here and there).
    seq = render_moving_target(2, seed=7)
    box = (93.37, 67.26, 40.37, 40.0)
    network = pipeline.networks.template
    templates = []

    class Recorded(ModelSession):
        input_names, output_names = network.input_names, network.output_names

        def run(self, inputs):
            templates.append(next(iter(inputs.values())))
            return network.run(inputs)

    for mode in ("off", "auto"):
        tracker = with_gate(pipeline, mode, blur_threshold=0.0)
        tracker.nets = replace(tracker.nets, template=Recorded())
        assert tracker.init(seq.frames[0], box).deblurred is False
    np.testing.assert_array_equal(templates[0], templates[1])


def test_the_input_tensor_and_the_pad_colour_are_numpys_to_the_bit(pipeline):
    # The tracker's faster paths (cv2.split into the tensor's planes, cv2.sumElems for the mean)
    # against the plain numpy definitions.
    seq = render_moving_target(2, seed=9)
    frame = seq.frames[0]
    tracker = pipeline.new_tracker(deblur="off")
    tracker.init(frame, seq.boxes[0])
    np.testing.assert_array_equal(tracker.channel_mean, frame.mean(axis=(0, 1)))
    crop = frame[10:137, 20:147]
    want = np.ascontiguousarray(crop.transpose(2, 0, 1)[None], dtype=np.float32)
    got = tracker.nets.to_input(crop)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def test_grey_and_bgra_frames_are_accepted(pipeline):
    seq = render_moving_target(4, seed=7)
    tracker = pipeline.new_tracker(deblur="off")
    tracker.init(cv2.cvtColor(seq.frames[0], cv2.COLOR_BGR2GRAY), seq.boxes[0])
    r1 = tracker.track(cv2.cvtColor(seq.frames[1], cv2.COLOR_BGR2BGRA))
    r2 = tracker.track(cv2.cvtColor(seq.frames[2], cv2.COLOR_BGR2GRAY)[:, :, None])
    assert r1.state == r2.state == "tracking"


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((10, 10, 2), np.uint8), "shape"),
        (np.zeros((10, 10, 3), np.float32), "uint8"),
        ("not an array", "numpy array"),
    ],
)
def test_bad_frames_are_rejected_with_a_message(pipeline, frame, message):
    tracker = pipeline.new_tracker()
    with pytest.raises(InvalidFrameError, match=message):
        tracker.init(frame, (1, 1, 5, 5))


def test_bad_boxes_and_order_of_calls(pipeline):
    frame = render_moving_target(1).frames[0]
    tracker = pipeline.new_tracker()
    with pytest.raises(NotInitializedError, match="init"):
        tracker.track(frame)
    with pytest.raises(InvalidBoxError, match="positive"):
        tracker.init(frame, (10, 10, 0, 20))
    with pytest.raises(InvalidBoxError, match="outside"):
        tracker.init(frame, (1000, 10, 20, 20))


def test_decode_image_errors_and_formats():
    frame = render_moving_target(1).frames[0]
    for ext in (".png", ".jpg"):
        ok, data = cv2.imencode(ext, frame)
        assert decode_image(data.tobytes()).shape == frame.shape
    ok, grey_png = cv2.imencode(".png", frame[:, :, 0])
    assert decode_image(grey_png.tobytes()).shape == frame.shape
    with pytest.raises(InvalidFrameError, match="empty"):
        decode_image(b"")
    with pytest.raises(InvalidFrameError, match="JPEG or PNG"):
        decode_image(b"\xff\xd8 this is not really a jpeg")
    assert as_bgr(frame) is frame


def test_missing_model_file_names_the_fix(test_bundle, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in test_bundle.iterdir():
        if f.name != "search.onnx":
            (broken / f.name).write_bytes(f.read_bytes())
    with pytest.raises(ModelNotFoundError, match="search.onnx"):
        Pipeline.from_bundle(broken, backend="onnxruntime")
    with pytest.raises(ModelNotFoundError, match="models list"):
        Pipeline.from_bundle(tmp_path / "nowhere", backend="onnxruntime")


def test_manifest_wiring_is_validated(test_bundle, tmp_path):
    data = json.loads((test_bundle / "manifest.json").read_text())
    data["search"]["inputs"][1]["name"] = "not_a_template_output"
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelNotFoundError, match="not template outputs"):
        load_bundle(tmp_path)


@pytest.mark.parametrize("setting, value", [("rescue_score", 1.5), ("strength", 0.0), ("blur_threshold", -1.0)])
def test_deblur_policy_out_of_range_is_rejected(test_bundle, tmp_path, setting, value):
    data = json.loads((test_bundle / "manifest.json").read_text())
    data["deblur_policy"][setting] = value  # a score is at most 1, strength 0 would be `off`, blur scores are >= 0
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(ModelNotFoundError, match=setting):
        load_bundle(tmp_path)


def test_deblur_strength_blends_the_network_output_with_the_crop(pipeline):
    crop = cv2.resize(render_moving_target(1, seed=8).frames[0], (255, 255))
    tensor = pipeline.networks.to_input(crop)
    deblurrer = pipeline.networks.deblurrer
    full = deblurrer(tensor)
    half = deblurrer.with_policy(deblurrer.policy.model_copy(update={"strength": 0.5}))(tensor)
    assert np.abs(full - tensor).max() > 1.0  # the network changes the crop, so the blend is not trivial
    np.testing.assert_allclose(half, 0.5 * full + 0.5 * tensor, rtol=1e-5, atol=1e-3)


def test_unknown_backend_is_rejected():
    with pytest.raises(BackendUnavailableError, match="choose one of"):
        get_backend("tensorflow")
