"""Training loop for the Siamese RPN tracker: resumable, seeded, budgeted, with checkpoints.

Every batch is drawn from its own generator np.random.default_rng([seed, iteration]), so a resumed
run sees the same pairs it would have seen without the interruption.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from blurtrack.engine.anchors import box_iou_cxcywh, decode_boxes, flatten_loc, foreground_scores
from blurtrack.models.evaluation.splits import split_dirs
from blurtrack.models.synth import split_images
from blurtrack.models.tracker.data import MixedSampler, PairConfig, PairSampler, SequencePairSampler, load_images
from blurtrack.models.tracker.deblur_input import DeblurredInput
from blurtrack.models.tracker.labels import AnchorTarget
from blurtrack.models.tracker.net import SiamRPN, build_tracker
from blurtrack.models.tracker.real_clips import RealClipPairSampler, load_pack, pack_clip
from blurtrack.models.tracker.teacher import NanoTrackTeacher


# ---------------------------------------------------------------- loss
def rpn_loss(
    cls: torch.Tensor,
    loc: torch.Tensor,
    labels: torch.Tensor,
    loc_target: torch.Tensor,
    loc_weight: torch.Tensor,
    loc_lambda: float,
    smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """pysot's loss: 0.5 * CE(positives) + 0.5 * CE(negatives), plus lambda * smooth-L1 on positives.

    cls [N, 2k, S, S] (bg block then fg block), loc [N, 4k, S, S]; labels [N, A] in {-1, 0, 1},
    loc_target [N, A, 4], loc_weight [N, A] (1 / #positives on positives). `smoothing` moves each
    class target that far towards the other class: the logits stay bounded, so scores do not
    saturate at 1.0 and the tracker's window and penalties can still rank near-equal peaks.
    """
    n = cls.shape[0]
    logits = cls.reshape(n, 2, -1).transpose(1, 2)  # [N, A, 2] in the engine's anchor order
    logp = F.log_softmax(logits, dim=2)
    pos, neg = labels == 1, labels == 0
    ce_fg = -(1.0 - smoothing) * logp[..., 1] - smoothing * logp[..., 0]
    ce_bg = -(1.0 - smoothing) * logp[..., 0] - smoothing * logp[..., 1]
    loss_pos = ce_fg[pos].mean() if pos.any() else logits.sum() * 0.0
    loss_neg = ce_bg[neg].mean() if neg.any() else logits.sum() * 0.0
    cls_loss = 0.5 * loss_pos + 0.5 * loss_neg
    deltas = loc.reshape(n, 4, -1).transpose(1, 2)  # [N, A, 4]
    diff = F.smooth_l1_loss(deltas, loc_target, reduction="none", beta=1.0 / 9.0).sum(dim=2)
    loc_loss = (diff * loc_weight).sum() / n
    return cls_loss, loc_lambda * loc_loss


def distill_loss(cls: torch.Tensor, teacher: torch.Tensor, smoothing: float = 0.0) -> torch.Tensor:
    """Binary cross-entropy between each cell's best anchor score and the teacher's response there.

    cls [N, 2k, S, S] (bg block then fg block); teacher [N, S, S] probabilities. The best anchor's
    probability is the sigmoid of the largest fg - bg logit difference, so the loss works on that
    logit. The teacher's 0..1 is squeezed into smoothing..1 - smoothing, as label smoothing squeezes
    the anchor labels: the two targets agree on what a sure cell scores."""
    n, channels, size, _ = cls.shape
    logits = cls.reshape(n, 2, channels // 2, size, size)
    best = (logits[:, 1] - logits[:, 0]).amax(dim=1)
    target = smoothing + (1.0 - 2.0 * smoothing) * teacher
    return F.binary_cross_entropy_with_logits(best, target)


# ---------------------------------------------------------------- batches
def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC BGR uint8 -> NCHW uint8 BGR: a quarter of float32's bytes between loader processes; the
    consumer turns it into the bundle's float32 0..255 input where it runs the network."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(images).transpose(0, 3, 1, 2)))


def make_batch(sampler: PairSampler, target: AnchorTarget, rng: np.random.Generator, size: int):
    z, x, lab, tgt, wgt, boxes = [], [], [], [], [], []
    for _ in range(size):
        pair = sampler.sample(rng)
        c, l, w = target(pair.box, rng, pair.negative)
        z.append(pair.template)
        x.append(pair.search)
        lab.append(c)
        tgt.append(l)
        wgt.append(w)
        boxes.append(np.append(pair.box, float(pair.negative)))
    return (
        to_tensor(z),
        to_tensor(x),
        torch.from_numpy(np.stack(lab)),
        torch.from_numpy(np.stack(tgt)),
        torch.from_numpy(np.stack(wgt)),
        np.stack(boxes),
    )


# ---------------------------------------------------------------- evaluation on held-out pairs
@torch.no_grad()
def evaluate(net: SiamRPN, batches: list, anchors: np.ndarray, device: torch.device | None = None) -> dict[str, float]:
    """Score-map sanity on held-out pairs: the argmax anchor's decoded box vs the true box.

    Reports the share of positive pairs whose decoded centre is within 16 px (search-crop
    pixels), their mean IoU, and the mean max foreground score on negative pairs."""
    net.eval()
    hits, ious, neg_scores, losses = [], [], [], []
    device = device or torch.device("cpu")
    for batch in batches:
        z, x, lab, tgt, wgt = (t.to(device) for t in batch[:5])
        boxes = batch[5]
        cls, loc = net(z.float(), x.float())
        lc, ll = rpn_loss(cls, loc, lab, tgt, wgt, 1.0)
        cls, loc = cls.float().cpu(), loc.float().cpu()
        losses.append(float(lc + ll))
        for i in range(len(boxes)):
            score = foreground_scores(cls[i : i + 1].numpy())
            best = int(np.argmax(score))
            if boxes[i, 4] > 0:
                neg_scores.append(float(score[best]))
                continue
            pred = decode_boxes(flatten_loc(loc[i : i + 1].numpy())[best : best + 1], anchors[best : best + 1])[0]
            gt = boxes[i, :4]
            hits.append(math.hypot(pred[0] - gt[0], pred[1] - gt[1]) <= 16.0)
            ious.append(float(box_iou_cxcywh(pred[None], gt)[0]))
    return {
        "val_loss": float(np.mean(losses)),
        "centre_hit16": float(np.mean(hits)) if hits else 0.0,
        "mean_iou": float(np.mean(ious)) if ious else 0.0,
        "neg_max_score": float(np.mean(neg_scores)) if neg_scores else 0.0,
    }


# ---------------------------------------------------------------- parameters
def configure_trainable(net: SiamRPN, train_from_block: int) -> None:
    """Freeze the early trunk (ImageNet features) for speed; everything from `train_from_block` on,
    the ECA gates, neck and head train. AlexNet (from scratch) trains entirely."""
    if net.cfg.backbone != "effnet_lite0":
        return  # AlexNet trains entirely; the deblurrer's encoder comes frozen
    bb = net.backbone
    for p in list(bb.conv_stem.parameters()) + list(bb.bn0.parameters()):
        p.requires_grad_(False)
    for i, block in enumerate(bb.blocks):
        if i < train_from_block:
            for p in block.parameters():
                p.requires_grad_(False)


def set_train_mode(net: SiamRPN) -> None:
    """Train mode, but pretrained trunk BatchNorms keep their ImageNet running statistics (batch
    statistics of 16 crops at two sizes would be noisy)."""
    net.train()
    if net.cfg.backbone in ("effnet_lite0", "deblur_encoder"):
        for m in net.backbone.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.eval()


def param_groups(net: SiamRPN, cfg: dict) -> list[dict]:
    trunk, eca, head, no_decay = [], [], [], []
    for name, p in net.named_parameters():
        if not p.requires_grad:
            continue
        if ".eca." in name:
            eca.append(p)
        elif name.startswith("backbone.") and net.cfg.backbone == "effnet_lite0":
            (no_decay if p.ndim == 1 else trunk).append(p)
        elif p.ndim == 1:
            no_decay.append(p)
        else:
            head.append(p)
    wd = cfg.get("weight_decay", 1e-4)
    lr = cfg.get("lr", 1e-3)
    trunk_lr = lr * cfg.get("trunk_lr_mult", 0.2)
    groups = [
        {"params": head, "lr": lr, "weight_decay": wd, "base_lr": lr},
        {"params": no_decay, "lr": lr, "weight_decay": 0.0, "base_lr": lr},
        {"params": trunk, "lr": trunk_lr, "weight_decay": wd, "base_lr": trunk_lr},
        {"params": eca, "lr": lr, "weight_decay": 0.0, "base_lr": lr},
    ]
    return [g for g in groups if g["params"]]


def lr_factor(it: int, progress: float, warmup: int) -> float:
    """Linear warm-up over `warmup` iterations, then cosine decay to 5% as progress goes 0 -> 1."""
    if it < warmup:
        return 0.1 + 0.9 * it / max(1, warmup)
    t = min(1.0, max(0.0, progress))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * t))


# ---------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, **payload) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


# Written into every exported bundle next to the ONNX files: the exact PyTorch weights (batch norm
# not folded, running statistics kept) and the training config, so a later run on another machine
# can fine-tune from the committed bundle (`--init BUNDLE_DIR`) instead of starting over.
TRAIN_WEIGHTS_FILE = "train_weights.npz"


def save_train_weights(net: SiamRPN, config: dict, path: Path) -> None:
    arrays = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    np.savez_compressed(path, __config__=np.array(json.dumps(config)), **arrays)


def load_init_state(path: Path) -> tuple[dict, str]:
    """Weights for `--init`: a bundle folder (its train_weights.npz), a train_weights.npz, or a
    training checkpoint / state dict (.pt). Returns (state dict, what was loaded)."""
    path = Path(path)
    if path.is_dir():
        path = path / TRAIN_WEIGHTS_FILE
    if not path.is_file():
        raise SystemExit(
            f"--init {path} not found: pass a bundle folder holding {TRAIN_WEIGHTS_FILE}, "
            f"such a file, or a checkpoint (.pt) from an earlier run"
        )
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: torch.from_numpy(data[k].copy()) for k in data.files if k != "__config__"}, f"train weights {path}"
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("model", state), f"checkpoint {path}"


def load_net_from_checkpoint(path: Path, snapshot: int | None = None) -> tuple[SiamRPN, dict]:
    """Rebuild the network from a checkpoint's stored config (no ImageNet download needed). A run
    file of models.tracker.collect holds several snapshots: `snapshot` picks one by iteration
    (default the last)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    if "snapshots" in ckpt:
        it = max(ckpt["snapshots"]) if snapshot is None else snapshot
        if it not in ckpt["snapshots"]:
            raise SystemExit(f"{path} has no snapshot at iteration {it}: it holds {sorted(ckpt['snapshots'])}")
        ckpt = {**ckpt, "model": ckpt["snapshots"][it], "iteration": it}
    net_cfg = dict(ckpt["config"]["net"], pretrained=False)
    net = build_tracker(net_cfg)
    net.load_state_dict(ckpt["model"])
    net.eval()
    return net, ckpt


def log_line(log: Path, record: dict) -> None:
    with log.open("a") as fh:
        fh.write(json.dumps(record) + "\n")


def synth_sampler(synth_cfg: dict, pair_cfg: PairConfig, images_dir: Path) -> SequencePairSampler:
    """Synthetic blurred sequences from the TRAIN photos, rendered once and cached on disk
    (blurtrack.models.synth.make_split reuses a complete folder with the same parameters)."""
    from blurtrack.models.synth import make_split

    root = Path(synth_cfg.get("root", "/tmp/blurtrack-train/synth-train"))
    split = synth_cfg.get("split", "train")
    print(f"synthetic {split} sequences in {root} (rendered if missing)", flush=True)
    make_split(
        split,
        root,
        n_sequences=int(synth_cfg.get("sequences", 100)),
        seed=int(synth_cfg.get("seed", 0)),
        n_frames=int(synth_cfg.get("frames", 60)),
        images_dir=images_dir,
    )
    return SequencePairSampler(root, pair_cfg, max_gap=int(synth_cfg.get("max_gap", 40)))


def real_sampler(real_cfg: dict, pair_cfg: PairConfig) -> RealClipPairSampler:
    """Pairs from the real-train clips of the `train` split: a packed file (models.tracker.pack) when
    the config names one, else packed in memory from ../shared/data/real-train."""
    if real_cfg.get("pack"):
        clips = load_pack(Path(real_cfg["pack"]))
    else:
        from blurtrack.models.paths import shared_dir

        root = Path(real_cfg.get("root") or shared_dir() / "data" / "real-train")
        clips = [pack_clip(d, every=int(real_cfg.get("every", 2))) for d in split_dirs(root, "train")]
    print(f"real pairs from {len(clips)} clips, {sum(len(c.frames) for c in clips)} frames", flush=True)
    return RealClipPairSampler(clips, pair_cfg, max_gap=int(real_cfg.get("max_gap", 100)))


@dataclass
class TrainingData:
    sampler: object  # anything with sample(rng) -> Pair
    val_batches: list  # held-out pairs for the checkpoint score
    track_batches: list  # tracking-style held-out pairs (synthetic DEV sequences), may be empty
    photos: int


def build_data(config: dict, seed: int, batch_size: int, target: AnchorTarget) -> TrainingData:
    """The training mix (still-photo pairs, real-clip pairs, synthetic sequences, by the config's
    probabilities) and the held-out batches the checkpoints are scored on."""
    from blurtrack.models.synth import default_images_dir

    images_dir = Path(config["images"]) if config.get("images") else default_images_dir()
    if not images_dir.is_dir():
        raise SystemExit(f'training images not found at {images_dir}: set "images" in the config')
    split = split_images(images_dir)
    pair_cfg = PairConfig.from_dict(config.get("pairs", {}))
    samplers: list = [PairSampler(load_images(split["train"]), pair_cfg)]
    probs = [1.0]
    real_cfg, synth_cfg = config.get("real") or {}, config.get("synth") or {}
    if real_cfg.get("prob", 0) > 0:
        samplers.append(real_sampler(real_cfg, pair_cfg))
        probs.append(float(real_cfg["prob"]))
    if synth_cfg.get("prob", 0) > 0:
        samplers.append(synth_sampler(synth_cfg, pair_cfg, images_dir))
        probs.append(float(synth_cfg["prob"]))
    probs[0] = 1.0 - sum(probs[1:])
    sampler = samplers[0] if len(samplers) == 1 else MixedSampler(samplers, probs)
    dev_sampler = PairSampler(load_images(split["dev"]), pair_cfg)
    deblur_bundle = config.get("deblur_input", {}).get("bundle")
    if deblur_bundle:
        # every sampler, held-out ones too, shows the tracker what the deblur gate lets it see
        print(f"training on deblurred input: the deblur gate and network of {deblur_bundle}", flush=True)
        sampler, dev_sampler = DeblurredInput(sampler, deblur_bundle), DeblurredInput(dev_sampler, deblur_bundle)
    n_val = int(config.get("train", {}).get("val_batches", 6))
    val = [make_batch(dev_sampler, target, np.random.default_rng([seed, 10**9, i]), batch_size) for i in range(n_val)]
    track = []
    if int(synth_cfg.get("dev_sequences", 0)) > 0 and synth_cfg.get("prob", 0) > 0:
        track_sampler = _tracking_style_sampler(synth_cfg, images_dir, deblur_bundle)
        track = [make_batch(track_sampler, target, np.random.default_rng([seed, 10**9 + 1, i]), batch_size) for i in range(n_val)]
    return TrainingData(sampler, val, track, len(split["train"]))


def _tracking_style_sampler(synth_cfg: dict, images_dir: Path, deblur_bundle: str | None):
    """Tracking-style held-out pairs: DEV synthetic sequences, the search crop centred where the
    target was one frame earlier (as the tracker does), no shift or colour augmentation."""
    sampler = synth_sampler(
        {
            **synth_cfg,
            "split": "dev",
            "root": synth_cfg.get("dev_root", "/tmp/blurtrack-train/synth-dev-train"),
            "sequences": synth_cfg["dev_sequences"],
            "max_gap": 60,
        },
        PairConfig(
            track_centre_prob=1.0, color_prob=0.0, grey_prob=0.0, template_shift=0.0, template_scale=0.0, search_scale=0.0
        ),
        images_dir,
    )
    return DeblurredInput(sampler, deblur_bundle) if deblur_bundle else sampler


class BatchStream(torch.utils.data.IterableDataset):
    """Training batches for iterations start..total-1, each drawn from np.random.default_rng([seed,
    it]) whichever process makes it: loader worker w makes the iterations it = w (mod workers), and
    the loader hands them back in order, so a run's pairs do not depend on the number of workers and
    a resumed run sees the pairs it would have seen."""

    def __init__(
        self,
        sampler,
        target: AnchorTarget,
        seed: int,
        start: int,
        total: int,
        batch_size: int,
        make_teacher: Callable[[], NanoTrackTeacher] | None = None,
    ):
        super().__init__()
        self.sampler, self.target = sampler, target
        self.seed, self.start, self.total, self.batch_size = seed, start, total, batch_size
        self.make_teacher = make_teacher

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        # built here, in the process that makes the batches: ONNX Runtime sessions do not cross a fork
        teacher = self.make_teacher() if self.make_teacher else None
        for it in range(self.start + worker, self.total, workers):
            batch = make_batch(self.sampler, self.target, np.random.default_rng([self.seed, it]), self.batch_size)[:5]
            if teacher is not None:
                batch = (*batch, torch.from_numpy(teacher.responses(batch[0].numpy(), batch[1].numpy())))
            yield it, batch


def build_net(config: dict, args: argparse.Namespace) -> SiamRPN:
    """The network, its trainable part, and its starting weights: `--init`, else the packed ImageNet
    trunk (`net.backbone_init`, see models.tracker.pack), else the weights package."""
    net_cfg = dict(config["net"])
    backbone_init = net_cfg.pop("backbone_init", None)
    if backbone_init:
        net_cfg["pretrained"] = False
    net = build_tracker(net_cfg)
    if backbone_init:
        with np.load(backbone_init) as data:
            net.backbone.load_state_dict({k: torch.from_numpy(data[k]) for k in data.files})
        print(f"trunk initialised from {backbone_init}", flush=True)
    configure_trainable(net, int(config.get("train", {}).get("train_from_block", 3)))
    if args.init:
        state, loaded = load_init_state(args.init)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise SystemExit(f"--init {args.init} does not fit the network of {args.config}: {exc}") from None
        print(f"initialised from {loaded}", flush=True)
    return net


def quiet_worker(_worker: int) -> None:
    """Loader workers run one thread each: many of them already fill the cores."""
    cv2.setNumThreads(1)
    torch.set_num_threads(1)


def pick_device(config: dict) -> torch.device:
    wanted = str(config.get("device", "auto"))
    if wanted == "auto":
        wanted = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(wanted)


# ---------------------------------------------------------------- main loop
class Trainer:
    """One training run: the optimisation steps, the schedule and the checkpoints."""

    def __init__(
        self,
        config: dict,
        args: argparse.Namespace,
        net: SiamRPN,
        data: TrainingData,
        target: AnchorTarget,
        device: torch.device,
        seed: int,
    ):
        self.config, self.net, self.data, self.target, self.device, self.seed = config, net, data, target, device, seed
        train_cfg = config.get("train", {})
        self.train_cfg = train_cfg
        self.out = Path(args.out)
        self.batch_size = int(train_cfg.get("batch_size", 16))
        self.total_iters = int(train_cfg.get("pairs", 40000)) // self.batch_size
        self.warmup = int(train_cfg.get("warmup_iters", 50))
        self.ckpt_every = float(train_cfg.get("checkpoint_minutes", 5.0)) * 60.0
        budget = args.budget_minutes if args.budget_minutes is not None else train_cfg.get("budget_minutes", 1e9)
        self.budget = float(budget) * 60.0
        self.optimizer = torch.optim.AdamW(param_groups(net, train_cfg))
        # "distill": {"lambda": ..., "temperature": ..., "teacher_dir": ...}: NanoTrack v2's response
        # maps as an extra target (models/tracker/teacher.py); absent or lambda 0: no teacher
        distill = config.get("distill") or {}
        self.distill_lambda = float(distill.get("lambda", 0.0))
        self.make_teacher = (
            functools.partial(NanoTrackTeacher, distill.get("teacher_dir"), float(distill.get("temperature", 2.0)))
            if self.distill_lambda > 0
            else None
        )
        self.start_iter, self.best, self.elapsed_before, self.progress = 0, -1.0, 0.0, 0.0
        self.log = self.out / "metrics.jsonl"
        # bf16 autocast on a GPU: the loss and the optimiser stay in fp32
        self.autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()
        if args.resume and (self.out / "last.pt").is_file():
            self.resume(self.out / "last.pt")

    def resume(self, last: Path) -> None:
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        self.net.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.start_iter, self.best = ckpt["iteration"], ckpt.get("best", -1.0)
        self.elapsed_before = ckpt.get("elapsed_s", 0.0)
        self.progress = ckpt.get("progress", self.start_iter / max(1, self.total_iters))
        print(f"resumed from {last} at iteration {self.start_iter}", flush=True)

    def checkpoint(self, it: int, elapsed: float) -> dict:
        """Score on the held-out pairs; write last.pt, best.pt and a snapshot of the weights at
        this iteration (snapshots are what selection on the real `select` clips chooses from)."""
        metrics = evaluate(self.net, self.data.val_batches, self.target.anchors, self.device)
        if self.data.track_batches:
            track = evaluate(self.net, self.data.track_batches, self.target.anchors, self.device)
            metrics.update({f"track_{k}": v for k, v in track.items()})
        set_train_mode(self.net)
        score = (
            metrics["centre_hit16"]
            + metrics["mean_iou"]
            + metrics.get("track_centre_hit16", 0.0)
            + metrics.get("track_mean_iou", 0.0)
        )
        model = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        payload = dict(
            model=model,
            optimizer=self.optimizer.state_dict(),
            iteration=it,
            config=self.config,
            seed=self.seed,
            elapsed_s=elapsed,
            progress=self.progress,
            metrics=metrics,
            best=max(self.best, score),
        )
        save_checkpoint(self.out / "last.pt", **payload)
        save_checkpoint(
            self.out / f"snapshot_{it:06d}.pt", model=model, iteration=it, config=self.config, seed=self.seed, metrics=metrics
        )
        if score > self.best:
            self.best = score
            save_checkpoint(self.out / "best.pt", **payload)
        log_line(self.log, {"iteration": it, "pairs": it * self.batch_size, "elapsed_s": round(elapsed, 1), **metrics})
        return metrics

    def step(self, it: int, batch: tuple, run_s: float) -> tuple[float, float, float, float]:
        # The schedule follows whichever runs out first, the pairs or the time budget, so a run
        # stopped by its budget has still decayed its learning rate (progress never goes back).
        # A resumed run's budget is what is left: time progress counts the earlier runs' time too.
        time_progress = (self.elapsed_before + run_s) / (self.elapsed_before + self.budget) if self.budget < 1e8 else 0.0
        self.progress = max(self.progress, it / self.total_iters, time_progress)
        factor = lr_factor(it, self.progress, self.warmup)
        for group in self.optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        z, x, lab, tgt, wgt, *teacher = (t.to(self.device, non_blocking=True) for t in batch)
        with self.autocast:
            cls, loc = self.net(z.float(), x.float())
        smoothing = float(self.train_cfg.get("label_smoothing", 0.0))
        lc, ll = rpn_loss(cls.float(), loc.float(), lab, tgt, wgt, float(self.train_cfg.get("loc_lambda", 1.2)), smoothing)
        ld = self.distill_lambda * distill_loss(cls.float(), teacher[0], smoothing) if teacher else torch.zeros(())
        self.optimizer.zero_grad(set_to_none=True)
        (lc + ll + ld).backward()
        torch.nn.utils.clip_grad_norm_([p for p in self.net.parameters() if p.requires_grad], 10.0)
        self.optimizer.step()
        return lc.item(), ll.item(), ld.item(), factor

    def run(self, workers: int) -> int:
        started = last_ckpt = time.monotonic()
        set_train_mode(self.net)
        bar = tqdm(total=self.total_iters, initial=self.start_iter, desc="tracker", mininterval=10.0)
        smooth: dict[str, float] = {}
        it = self.start_iter
        for it, batch in self._loader(workers):
            lc, ll, ld, factor = self.step(it, batch, time.monotonic() - started)
            losses = (("cls", lc), ("loc", ll), ("distill", ld)) if self.make_teacher else (("cls", lc), ("loc", ll))
            for k, v in losses:
                smooth[k] = v if k not in smooth else 0.98 * smooth[k] + 0.02 * v
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in smooth.items()} | {"lr": f"{factor:.2f}"}, refresh=False)
            now = time.monotonic()
            if it % 50 == 0:
                self._log_losses(it, smooth, factor, self.elapsed_before + now - started)
            if now - last_ckpt >= self.ckpt_every:
                print(f"\niteration {it + 1}: {self.checkpoint(it + 1, self.elapsed_before + now - started)}", flush=True)
                last_ckpt = time.monotonic()
            if now - started >= self.budget:
                print(f"\nbudget of {self.budget / 60:.1f} min reached at iteration {it + 1}", flush=True)
                break
        bar.close()
        final_iter = min(it + 1, self.total_iters)
        m = self.checkpoint(final_iter, self.elapsed_before + time.monotonic() - started)
        print(f"finished at iteration {final_iter}: {m}; checkpoints in {self.out}", flush=True)
        if isinstance(self.data.sampler, DeblurredInput):
            print(f"deblur gate on training pairs: {self.data.sampler.counts}", flush=True)
        return 0

    def _loader(self, workers: int) -> torch.utils.data.DataLoader:
        """The run's remaining batches, made by `workers` loader processes (0: this one)."""
        stream = BatchStream(
            self.data.sampler, self.target, self.seed, self.start_iter, self.total_iters, self.batch_size, self.make_teacher
        )
        return torch.utils.data.DataLoader(
            stream,
            batch_size=None,
            num_workers=workers,
            worker_init_fn=quiet_worker,
            prefetch_factor=4 if workers else None,
            pin_memory=self.device.type == "cuda",
        )

    def _log_losses(self, it: int, smooth: dict[str, float], factor: float, elapsed_s: float) -> None:
        log_line(
            self.log,
            {
                "iteration": it,
                **{k: round(v, 4) for k, v in smooth.items()},
                "lr_factor": round(factor, 3),
                "elapsed_s": round(elapsed_s, 1),
            },
        )


def run(config: dict, args: argparse.Namespace) -> int:
    # OpenCV's thread pool does not survive fork: loader workers that inherit a started pool hang
    # at their first cv2 call (seen on the GPU machine), so the parent never starts one.
    cv2.setNumThreads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else config.get("seed", 0)
    torch.set_num_threads(int(config.get("threads", 1)))
    torch.manual_seed(seed)
    device = pick_device(config)
    batch_size = int(config.get("train", {}).get("batch_size", 16))
    target = AnchorTarget()
    data = build_data(config, seed, batch_size, target)
    net = build_net(config, args).to(device)
    trainer = Trainer(config, args, net, data, target, device, seed)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(
        f"{sum(p.numel() for p in net.parameters())} parameters, {trainable} trainable; {trainer.total_iters} iterations "
        f"of {batch_size} pairs on {device}; train photos {data.photos}",
        flush=True,
    )
    return trainer.run(int(config.get("workers", 0)))
