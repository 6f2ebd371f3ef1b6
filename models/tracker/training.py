"""Training loop for the Siamese RPN tracker: resumable, seeded, budgeted, with checkpoints.

Every batch is drawn from its own generator np.random.default_rng([seed, iteration]), so a resumed
run sees the same pairs it would have seen without the interruption.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from engine.anchors import box_iou_cxcywh, decode_boxes, flatten_loc, foreground_scores
from models.tracker.data import MixedSampler, PairConfig, PairSampler, SequencePairSampler, load_images, split_images
from models.tracker.deblur_input import DeblurredInput
from models.tracker.labels import AnchorTarget
from models.tracker.net import SiamRPN, build_tracker


# ---------------------------------------------------------------- loss
def rpn_loss(cls: torch.Tensor, loc: torch.Tensor, labels: torch.Tensor, loc_target: torch.Tensor,
             loc_weight: torch.Tensor, loc_lambda: float) -> tuple[torch.Tensor, torch.Tensor]:
    """pysot's loss: 0.5 * CE(positives) + 0.5 * CE(negatives), plus lambda * smooth-L1 on positives.

    cls [N, 2k, S, S] (bg block then fg block), loc [N, 4k, S, S]; labels [N, A] in {-1, 0, 1},
    loc_target [N, A, 4], loc_weight [N, A] (1 / #positives on positives).
    """
    n = cls.shape[0]
    logits = cls.reshape(n, 2, -1).transpose(1, 2)  # [N, A, 2] in the engine's anchor order
    logp = F.log_softmax(logits, dim=2)
    pos, neg = labels == 1, labels == 0
    loss_pos = -logp[..., 1][pos].mean() if pos.any() else logits.sum() * 0.0
    loss_neg = -logp[..., 0][neg].mean() if neg.any() else logits.sum() * 0.0
    cls_loss = 0.5 * loss_pos + 0.5 * loss_neg
    deltas = loc.reshape(n, 4, -1).transpose(1, 2)  # [N, A, 4]
    diff = F.smooth_l1_loss(deltas, loc_target, reduction="none", beta=1.0 / 9.0).sum(dim=2)
    loc_loss = (diff * loc_weight).sum() / n
    return cls_loss, loc_lambda * loc_loss


# ---------------------------------------------------------------- batches
def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    """HWC BGR uint8 -> NCHW float32 BGR 0..255 (the bundle's input convention)."""
    return torch.from_numpy(np.stack(images).transpose(0, 3, 1, 2).astype(np.float32))


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
    return (to_tensor(z), to_tensor(x), torch.from_numpy(np.stack(lab)), torch.from_numpy(np.stack(tgt)),
            torch.from_numpy(np.stack(wgt)), np.stack(boxes))


# ---------------------------------------------------------------- evaluation on held-out pairs
@torch.no_grad()
def evaluate(net: SiamRPN, batches: list, anchors: np.ndarray) -> dict[str, float]:
    """Score-map sanity on held-out pairs: the argmax anchor's decoded box vs the true box.

    Reports the share of positive pairs whose decoded centre is within 16 px (search-crop
    pixels), their mean IoU, and the mean max foreground score on negative pairs."""
    net.eval()
    hits, ious, neg_scores, losses = [], [], [], []
    for z, x, lab, tgt, wgt, boxes in batches:
        cls, loc = net(z, x)
        lc, ll = rpn_loss(cls, loc, lab, tgt, wgt, 1.0)
        losses.append(float(lc + ll))
        for i in range(len(boxes)):
            score = foreground_scores(cls[i: i + 1].numpy())
            best = int(np.argmax(score))
            if boxes[i, 4] > 0:
                neg_scores.append(float(score[best]))
                continue
            pred = decode_boxes(flatten_loc(loc[i: i + 1].numpy())[best: best + 1], anchors[best: best + 1])[0]
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
        raise SystemExit(f"--init {path} not found: pass a bundle folder holding {TRAIN_WEIGHTS_FILE}, "
                         f"such a file, or a checkpoint (.pt) from an earlier run")
    if path.suffix == ".npz":
        with np.load(path) as data:
            return {k: torch.from_numpy(data[k].copy()) for k in data.files if k != "__config__"}, f"train weights {path}"
    state = torch.load(path, map_location="cpu", weights_only=False)
    return state.get("model", state), f"checkpoint {path}"


def load_net_from_checkpoint(path: Path) -> tuple[SiamRPN, dict]:
    """Rebuild the network from a checkpoint's stored config (no ImageNet download needed)."""
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
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
    (engine.data.synth.make_split reuses a complete folder with the same parameters)."""
    from engine.data.synth import make_split

    root = Path(synth_cfg.get("root", "/tmp/blurtrack-train/synth-train"))
    split = synth_cfg.get("split", "train")
    print(f"synthetic {split} sequences in {root} (rendered if missing)", flush=True)
    make_split(split, root, n_sequences=int(synth_cfg.get("sequences", 100)), seed=int(synth_cfg.get("seed", 0)),
               n_frames=int(synth_cfg.get("frames", 60)), images_dir=images_dir)
    return SequencePairSampler(root, pair_cfg, max_gap=int(synth_cfg.get("max_gap", 40)))


# ---------------------------------------------------------------- main loop
def run(config: dict, args: argparse.Namespace) -> int:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    seed = args.seed if args.seed is not None else config.get("seed", 0)
    threads = int(config.get("threads", 1))
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    train_cfg = config.get("train", {})
    batch_size = int(train_cfg.get("batch_size", 16))
    total_iters = int(train_cfg.get("pairs", 40000)) // batch_size
    warmup = int(train_cfg.get("warmup_iters", 50))
    ckpt_every = float(train_cfg.get("checkpoint_minutes", 5.0)) * 60.0
    budget = (args.budget_minutes if args.budget_minutes is not None else train_cfg.get("budget_minutes", 1e9)) * 60.0

    from engine.data.synth import default_images_dir

    images_dir = Path(config["images"]) if config.get("images") else default_images_dir()
    if not images_dir.is_dir():
        raise SystemExit(f"training images not found at {images_dir}: set \"images\" in the config")
    split = split_images(images_dir)
    (out / "split.json").write_text(json.dumps({k: [p.name for p in v] for k, v in split.items()}, indent=1))
    pair_cfg = PairConfig.from_dict(config.get("pairs", {}))
    sampler = PairSampler(load_images(split["train"]), pair_cfg)
    synth_cfg = config.get("synth")
    if synth_cfg and synth_cfg.get("prob", 0) > 0:
        sampler = MixedSampler([sampler, synth_sampler(synth_cfg, pair_cfg, images_dir)],
                               [1.0 - synth_cfg["prob"], synth_cfg["prob"]])
    dev_sampler = PairSampler(load_images(split["dev"]), pair_cfg)
    deblur_bundle = config.get("deblur_input", {}).get("bundle")
    if deblur_bundle:
        # every sampler, held-out ones too, shows the tracker what the deblur gate lets it see
        print(f"training on deblurred input: the deblur gate and network of {deblur_bundle}", flush=True)
        sampler, dev_sampler = DeblurredInput(sampler, deblur_bundle), DeblurredInput(dev_sampler, deblur_bundle)
    target = AnchorTarget()
    val_batches = [make_batch(dev_sampler, target, np.random.default_rng([seed, 10**9, i]), batch_size)
                   for i in range(int(train_cfg.get("val_batches", 6)))]
    track_batches = []
    if synth_cfg and int(synth_cfg.get("dev_sequences", 0)) > 0:
        # tracking-style held-out pairs: DEV synthetic sequences, search crop centred where the
        # target was one frame earlier (as the tracker does), no shift or colour augmentation
        track_sampler = synth_sampler({**synth_cfg, "split": "dev", "root": synth_cfg.get("dev_root", "/tmp/blurtrack-train/synth-dev-train"),
                                       "sequences": synth_cfg["dev_sequences"], "max_gap": 60},
                                      PairConfig(track_centre_prob=1.0, color_prob=0.0, grey_prob=0.0, template_shift=0.0,
                                                 template_scale=0.0, search_scale=0.0), images_dir)
        if deblur_bundle:
            track_sampler = DeblurredInput(track_sampler, deblur_bundle)
        track_batches = [make_batch(track_sampler, target, np.random.default_rng([seed, 10**9 + 1, i]), batch_size)
                         for i in range(int(train_cfg.get("val_batches", 6)))]

    net = build_tracker(config["net"])
    configure_trainable(net, int(train_cfg.get("train_from_block", 3)))
    if args.init:
        state, loaded = load_init_state(args.init)
        try:
            net.load_state_dict(state)
        except RuntimeError as exc:
            raise SystemExit(f"--init {args.init} does not fit the network of {args.config}: {exc}") from None
        print(f"initialised from {loaded}", flush=True)
    optimizer = torch.optim.AdamW(param_groups(net, train_cfg))
    start_iter, best, elapsed_before, progress = 0, -1.0, 0.0, 0.0
    last = out / "last.pt"
    if args.resume and last.is_file():
        ckpt = torch.load(last, map_location="cpu", weights_only=False)
        net.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        start_iter, best = ckpt["iteration"], ckpt.get("best", -1.0)
        elapsed_before = ckpt.get("elapsed_s", 0.0)
        progress = ckpt.get("progress", start_iter / max(1, total_iters))
        print(f"resumed from {last} at iteration {start_iter}", flush=True)

    log = out / "metrics.jsonl"
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    print(f"{sum(p.numel() for p in net.parameters())} parameters, {trainable} trainable; "
          f"{total_iters} iterations of {batch_size} pairs; train images {len(split['train'])}", flush=True)

    def checkpoint(it: int, elapsed: float) -> dict:
        nonlocal best
        metrics = evaluate(net, val_batches, target.anchors)
        if track_batches:
            metrics.update({f"track_{k}": v for k, v in evaluate(net, track_batches, target.anchors).items()})
        set_train_mode(net)
        score = metrics["centre_hit16"] + metrics["mean_iou"] + metrics.get("track_centre_hit16", 0.0) + metrics.get("track_mean_iou", 0.0)
        payload = dict(model=net.state_dict(), optimizer=optimizer.state_dict(), iteration=it, config=config,
                       seed=seed, elapsed_s=elapsed, progress=progress, metrics=metrics, best=max(best, score))
        save_checkpoint(last, **payload)
        if score > best:
            best = score
            save_checkpoint(out / "best.pt", **payload)
        log_line(log, {"iteration": it, "pairs": it * batch_size, "elapsed_s": round(elapsed, 1), **metrics})
        return metrics

    started = time.monotonic()
    last_ckpt = started
    set_train_mode(net)
    bar = tqdm(range(start_iter, total_iters), initial=start_iter, total=total_iters, desc="tracker", mininterval=10.0)
    smooth: dict[str, float] = {}
    it = start_iter
    for it in bar:
        rng = np.random.default_rng([seed, it])
        z, x, lab, tgt, wgt, _ = make_batch(sampler, target, rng, batch_size)
        # The schedule follows whichever runs out first, the pairs or the time budget, so a run
        # stopped by its budget has still decayed its learning rate (progress never goes back).
        # A resumed run's budget is what is left: time progress counts the earlier runs' time too.
        run_s = time.monotonic() - started
        time_progress = (elapsed_before + run_s) / (elapsed_before + budget) if budget < 1e8 else 0.0
        progress = max(progress, it / total_iters, time_progress)
        factor = lr_factor(it, progress, warmup)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        cls, loc = net(z, x)
        lc, ll = rpn_loss(cls, loc, lab, tgt, wgt, float(train_cfg.get("loc_lambda", 1.2)))
        loss = lc + ll
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in net.parameters() if p.requires_grad], 10.0)
        optimizer.step()
        for k, v in (("cls", lc.item()), ("loc", ll.item())):
            smooth[k] = v if k not in smooth else 0.98 * smooth[k] + 0.02 * v
        bar.set_postfix(cls=f"{smooth['cls']:.3f}", loc=f"{smooth['loc']:.3f}", lr=f"{factor:.2f}", refresh=False)
        now = time.monotonic()
        if it % 50 == 0:
            log_line(log, {"iteration": it, "cls": round(smooth["cls"], 4), "loc": round(smooth["loc"], 4),
                           "lr_factor": round(factor, 3), "elapsed_s": round(elapsed_before + now - started, 1)})
        if now - last_ckpt >= ckpt_every:
            m = checkpoint(it + 1, elapsed_before + now - started)
            print(f"\niteration {it + 1}: {m}", flush=True)
            last_ckpt = time.monotonic()
        if now - started >= budget:
            print(f"\nbudget of {budget / 60:.1f} min reached at iteration {it + 1}", flush=True)
            break
    bar.close()
    final_iter = min(it + 1, total_iters)
    m = checkpoint(final_iter, elapsed_before + time.monotonic() - started)
    print(f"finished at iteration {final_iter}: {m}; checkpoints in {out}", flush=True)
    if isinstance(sampler, DeblurredInput):
        print(f"deblur gate on training pairs: {sampler.counts}", flush=True)
    return 0
