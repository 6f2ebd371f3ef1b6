"""Train the deblurrer.

    python -m blurtrack.models.deblur.train --config models/configs/deblur.json --out /tmp/blurtrack-train/deblur [--resume]
        [--budget-minutes 75] [--init previous.pt|deblur.onnx] [--threads 1] [--steps N] [--seed N]

or, through the one training command, `python -m blurtrack.models.train --config models/configs/deblur.json
--out DIR [--init ...] [--seed N] [--set optim.lr=0.0001]` (the config's "task" picks this trainer).

Data: blur_pair crops (255 and 127) from the TRAIN split photos, generated on the fly;
validation PSNR on fixed DEV pairs after each epoch. Losses: L1 + perceptual (frozen ImageNet
MobileNetV2 features) + a small LSGAN adversarial term (PatchGAN critic) after a warm-up.
The learning rate follows a cosine over training progress = max(step / steps, elapsed / budget),
so a run cut short by its wall-clock budget still ends annealed. Checkpoints: DIR/last.pt each
epoch and at the end (resumable with --resume), DIR/best.pt at the best validation PSNR,
DIR/metrics.jsonl one line per epoch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from tqdm import tqdm

from blurtrack.engine.errors import BlurtrackError, ModelNotFoundError
from blurtrack.models.deblur.data import fixed_pairs, load_split_images, psnr, sample_batch
from blurtrack.models.deblur.net import FPNDeblur, PatchDiscriminator, PerceptualLoss


def load_config(path: str | Path) -> dict:
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"config {p} not found; pass --config models/configs/deblur.json")
    return json.loads(p.read_text())


def build_generator(cfg: dict, pretrained: bool = True) -> FPNDeblur:
    m = cfg.get("model", {})
    return FPNDeblur(lateral=m.get("lateral", 64), head=m.get("head", 32), pretrained=pretrained)


def load_onnx_weights(model: FPNDeblur, path: Path) -> int:
    """Copy weights from an exported deblur.onnx back into `model`; returns the convs loaded.

    On export each encoder Conv+BatchNorm pair is fused into one Conv with a bias, and the
    tensors lose their names. ONNX lists its Conv nodes in execution order, so they are paired
    with the model's Conv2d layers in the order their forward hooks fire; a fused bias goes into
    the following BatchNorm, which is set to the identity (scale 1, mean 0, var 1 - eps).
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    onnx_convs = [n for n in graph.node if n.op_type == "Conv"]
    order: list[torch.nn.Conv2d] = []
    hooks = [
        m.register_forward_hook(lambda m, _i, _o: order.append(m)) for m in model.modules() if isinstance(m, torch.nn.Conv2d)
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    for h in hooks:
        h.remove()
    if len(order) != len(onnx_convs):
        raise BlurtrackError(f"{path} has {len(onnx_convs)} convolutions, this model {len(order)}: not the same architecture")
    following_bn: dict[int, torch.nn.BatchNorm2d] = {}
    modules = list(model.modules())
    for m, after in zip(modules, modules[1:]):
        if isinstance(m, torch.nn.Conv2d) and isinstance(after, torch.nn.BatchNorm2d):
            following_bn[id(m)] = after
    with torch.no_grad():
        for conv, node in zip(order, onnx_convs):
            w = torch.from_numpy(tensors[node.input[1]].copy())
            if w.shape != conv.weight.shape:
                raise BlurtrackError(
                    f"{path}: conv weight shape {tuple(w.shape)} != {tuple(conv.weight.shape)}; not this architecture"
                )
            b = torch.from_numpy(tensors[node.input[2]].copy()) if len(node.input) > 2 else torch.zeros(w.shape[0])
            conv.weight.copy_(w)
            bn = following_bn.get(id(conv))
            if bn is not None:
                assert bn.running_mean is not None and bn.running_var is not None  # the nets keep running statistics
                bn.weight.fill_(1.0)
                bn.bias.copy_(b)
                bn.running_mean.zero_()
                bn.running_var.fill_(1.0 - bn.eps)
            elif conv.bias is not None:
                conv.bias.copy_(b)
    return len(order)


def load_init(model: FPNDeblur, path: str | Path) -> str:
    """Initialise from a checkpoint (.pt) or from an exported deblur.onnx."""
    p = Path(path)
    if not p.is_file():
        raise ModelNotFoundError(f"--init file {p} not found")
    if p.suffix == ".onnx":
        return f"{load_onnx_weights(model, p)} convolutions from ONNX {p}"
    state = torch.load(p, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"] if isinstance(state, dict) and "model" in state else state)
    return f"checkpoint {p}"


def lr_factor(progress: float, warmup_frac: float, min_frac: float) -> float:
    if progress < warmup_frac:
        return max(progress / warmup_frac, 0.01)
    q = min((progress - warmup_frac) / max(1.0 - warmup_frac, 1e-6), 1.0)
    return min_frac + (1.0 - min_frac) * 0.5 * (1.0 + math.cos(math.pi * q))


@torch.no_grad()
def validate(model: FPNDeblur, pairs: list[tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """Mean PSNR (blurred vs sharp, deblurred vs sharp) over fixed pairs, outputs rounded to uint8."""
    model.eval()
    before, after = [], []
    for blurred, sharp in pairs:
        x = torch.from_numpy(blurred.transpose(2, 0, 1)[None].astype(np.float32))
        y = model(x)[0].numpy().transpose(1, 2, 0)
        before.append(psnr(blurred, sharp))
        after.append(psnr(np.clip(np.round(y), 0, 255).astype(np.uint8), sharp))
    model.train()
    return float(np.mean(before)), float(np.mean(after))


def save_atomic(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m blurtrack.models.deblur.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default="models/configs/deblur.json")
    ap.add_argument("--out", required=True, help="checkpoint folder (outside the repo)")
    ap.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    ap.add_argument("--init", help="start weights: a .pt checkpoint or an exported deblur.onnx")
    ap.add_argument("--budget-minutes", type=float, help="stop cleanly after this many minutes (overrides config)")
    ap.add_argument("--steps", type=int, help="total steps (overrides config)")
    ap.add_argument("--threads", type=int, help="torch threads (overrides config)")
    ap.add_argument("--seed", type=int, help="overrides the config's seed (a new seed draws new pairs when fine-tuning)")
    ap.add_argument("--images-dir", help="photo folder (default: ../shared/data/images)")
    return ap.parse_args(argv)


def _mean_losses(running: dict[str, float]) -> dict[str, float]:
    n = running.pop("n", 1.0)
    return {k: round(v / n, 5) for k, v in running.items()}


class DeblurTrainer:
    """One training run: the generator and its critic with their optimisers, the schedule, the
    training steps, each epoch's validation and the checkpoints."""

    def __init__(self, cfg: dict, args: argparse.Namespace):
        self.cfg = cfg
        self.total_steps = int(args.steps or cfg["total_steps"])
        self.budget_s = 60.0 * float(args.budget_minutes if args.budget_minutes is not None else cfg.get("budget_minutes", 1e9))
        torch.set_num_threads(int(args.threads or cfg.get("threads", 1)))
        self.seed = int(args.seed if args.seed is not None else cfg.get("seed", 0))
        torch.manual_seed(self.seed)
        self.rng = np.random.default_rng(self.seed)
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.last = self.out / "last.pt"
        self._read_recipe(cfg)
        # built in this order after the seed: their random initial weights depend on it
        self.gen = build_generator(cfg, pretrained=True)
        self.disc = PatchDiscriminator(cfg.get("disc_width", 32))
        self.perceptual = PerceptualLoss()
        self.opt_g, self.opt_d = self._optimisers()
        self.step, self.elapsed_before, self.best = 0, 0.0, -1.0
        self.history: list[dict] = []  # one record per epoch
        self.t0 = time.time()
        self.stop = False
        if args.resume:
            self._resume()
        elif args.init:
            print("init:", load_init(self.gen, args.init), flush=True)
        self.train_images = load_split_images("train", args.images_dir)
        self.val_pairs = self._validation_pairs(args.images_dir)

    def _read_recipe(self, cfg: dict) -> None:
        """The crops, the learning rate and the loss weights the config asks for."""
        crops, self.opt_cfg, loss_cfg = cfg["crops"], cfg["optim"], cfg["loss"]
        self.crops = crops
        self.lr = float(self.opt_cfg["lr"])
        self.sizes = [int(s) for s in crops["sizes"]]
        probs = np.asarray(crops["probs"], dtype=np.float64)
        self.probs = probs / probs.sum()
        self.k_range = tuple(crops.get("k_range", (7, 13)))
        self.max_smear = float(crops.get("max_smear", 48.0))
        self.steps_per_epoch = int(cfg.get("steps_per_epoch", 200))
        self.w_l1, self.w_p, self.w_adv = float(loss_cfg["l1"]), float(loss_cfg["perceptual"]), float(loss_cfg["adversarial"])
        self.adv_start = float(loss_cfg.get("adv_start_frac", 0.5))
        self.d_lr = float(loss_cfg.get("d_lr", 1e-4))

    def _optimisers(self) -> tuple[torch.optim.Adam, torch.optim.Adam]:
        opt_cfg = self.opt_cfg
        encoder_mult = opt_cfg.get("encoder_lr_mult", 1.0)
        opt_g = torch.optim.Adam(
            [
                {"params": list(self.gen.encoder_parameters()), "lr": self.lr * encoder_mult, "base": encoder_mult},
                {"params": self.gen.decoder_parameters(), "lr": self.lr, "base": 1.0},
            ],
            betas=tuple(opt_cfg.get("betas", (0.9, 0.999))),
        )
        opt_d = torch.optim.Adam(self.disc.parameters(), lr=self.d_lr, betas=(0.5, 0.999))
        return opt_g, opt_d

    def _resume(self) -> None:
        if not self.last.is_file():
            raise ModelNotFoundError(f"--resume: {self.last} not found; start without --resume")
        ck = torch.load(self.last, map_location="cpu", weights_only=False)
        self.gen.load_state_dict(ck["model"])
        self.disc.load_state_dict(ck["disc"])
        self.opt_g.load_state_dict(ck["opt_g"])
        self.opt_d.load_state_dict(ck["opt_d"])
        self.rng.bit_generator.state = ck["np_rng"]
        torch.set_rng_state(ck["torch_rng"])
        self.step, self.elapsed_before, self.best, self.history = ck["step"], ck["elapsed"], ck["best_psnr"], ck["history"]
        print(f"resumed from {self.last} at step {self.step} ({self.elapsed_before / 60:.1f} min done)", flush=True)

    def _validation_pairs(self, images_dir: str | None) -> list[tuple[np.ndarray, np.ndarray]]:
        val_cfg = self.cfg.get("val", {})
        return fixed_pairs(
            "dev",
            int(val_cfg.get("pairs", 48)),
            int(val_cfg.get("seed", 1234)),
            int(val_cfg.get("size", 255)),
            self.max_smear,
            images_dir,
        )

    @contextlib.contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """Inside, SIGTERM and SIGINT end the run cleanly (the step finishes, the checkpoints are
        written); the caller's handlers come back after (main() may run inside another program, a
        test process say, whose forked children must still die on SIGTERM)."""

        def on_signal(signum, _frame):
            self.stop = True

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- training ------------------------------------------------------------------------------
    def train(self) -> None:
        print(
            f"train photos {len(self.train_images)}, dev pairs {len(self.val_pairs)}, steps {self.total_steps}, "
            f"budget {self.budget_s / 60:.0f} min, threads {torch.get_num_threads()}, seed {self.seed}",
            flush=True,
        )
        self.t0 = time.time()
        self.gen.train()
        self.disc.train()
        running: dict[str, float] = {}
        bar = tqdm(total=self.total_steps, initial=self.step, desc="deblur", mininterval=30 if not sys.stderr.isatty() else 0.5)
        while self.step < self.total_steps and not self.stop:
            progress = max(self.step / self.total_steps, self._elapsed() / self.budget_s)
            if progress >= 1.0:
                print(f"wall-clock budget reached at step {self.step}", flush=True)
                break
            lr = self._set_lr(progress)
            losses = self._train_step(progress)
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + v
            running["n"] = running.get("n", 0.0) + 1
            self.step += 1
            bar.update(1)
            bar.set_postfix(l1=f"{losses['l1']:.4f}", perc=f"{losses['perc']:.3f}", lr=f"{lr:.1e}", refresh=False)
            if self.step % self.steps_per_epoch == 0:
                self._end_epoch(lr, _mean_losses(running))
                running = {}
        bar.close()

    def _elapsed(self) -> float:
        return self.elapsed_before + (time.time() - self.t0)

    def _set_lr(self, progress: float) -> float:
        """Cosine over progress after a warm-up; returns the decoder's learning rate."""
        f = lr_factor(progress, float(self.opt_cfg.get("warmup_frac", 0.02)), float(self.opt_cfg.get("min_lr_frac", 0.02)))
        for g in self.opt_g.param_groups:
            g["lr"] = self.lr * g["base"] * f
        return self.lr * f

    def _train_step(self, progress: float) -> dict[str, float]:
        """One generator step (L1 + perceptual, + adversarial once past adv_start) and, with the
        adversarial term on, one critic step. Returns the step's losses."""
        size = self.sizes[int(self.rng.choice(len(self.sizes), p=self.probs))]
        batch = int(self.crops["batch"][str(size)])
        blurred_np, sharp_np = sample_batch(self.train_images, self.rng, size, batch, self.max_smear, self.k_range)
        blurred, sharp = torch.from_numpy(blurred_np), torch.from_numpy(sharp_np)
        use_adv = self.w_adv > 0 and progress >= self.adv_start
        losses: dict[str, float] = {}

        out_img = self.gen(blurred)
        l1 = F.l1_loss(out_img, sharp) / 255.0
        lp = self.perceptual(out_img, sharp)
        loss = self.w_l1 * l1 + self.w_p * lp
        if use_adv:
            self.disc.requires_grad_(False)
            l_adv = 0.5 * ((self.disc(out_img) - 1.0) ** 2).mean()
            loss = loss + self.w_adv * l_adv
        self.opt_g.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_g.step()
        if use_adv:
            self.disc.requires_grad_(True)
            d_loss = 0.5 * ((self.disc(sharp) - 1.0) ** 2).mean() + 0.5 * (self.disc(out_img.detach()) ** 2).mean()
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            self.opt_d.step()
            losses.update(adv=l_adv.item(), d=d_loss.item())
        losses.update(l1=l1.item(), perc=lp.item())
        return losses

    # -- validation and checkpoints --------------------------------------------------------------
    def _end_epoch(self, lr: float, mean_losses: dict[str, float]) -> None:
        before, after = validate(self.gen, self.val_pairs)
        rec = {
            "step": self.step,
            "minutes": round(self._elapsed() / 60, 2),
            "lr": lr,
            "val_psnr_blurred": round(before, 3),
            "val_psnr_deblurred": round(after, 3),
            "val_gain_db": round(after - before, 3),
            **mean_losses,
        }
        self.history.append(rec)
        with open(self.out / "metrics.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        print(json.dumps(rec), flush=True)
        self._keep(after)

    def finish(self) -> None:
        """Validate once more and write the final checkpoints."""
        before, after = validate(self.gen, self.val_pairs)
        final = {
            "final_step": self.step,
            "val_psnr_blurred": round(before, 3),
            "val_psnr_deblurred": round(after, 3),
            "val_gain_db": round(after - before, 3),
        }
        print(json.dumps(final), flush=True)
        self._keep(after)
        best = self.out / "best.pt"
        print(f"saved {self.last}" + (f" and {best}" if best.exists() else ""), flush=True)

    def _keep(self, val_psnr: float) -> None:
        """last.pt always; best.pt too when `val_psnr` beats the best so far."""
        improved = val_psnr > self.best
        self.best = max(self.best, val_psnr)
        self._checkpoint("best" if improved else "last")

    def _checkpoint(self, tag: str) -> None:
        state = {
            "step": self.step,
            "model": self.gen.state_dict(),
            "disc": self.disc.state_dict(),
            "opt_g": self.opt_g.state_dict(),
            "opt_d": self.opt_d.state_dict(),
            "np_rng": self.rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "elapsed": self._elapsed(),
            "best_psnr": self.best,
            "history": self.history,
            "config": self.cfg,
        }
        save_atomic(state, self.last)
        if tag == "best":
            save_atomic(
                {"step": self.step, "model": self.gen.state_dict(), "config": self.cfg, "val_psnr": self.best},
                self.out / "best.pt",
            )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    trainer = DeblurTrainer(load_config(args.config), args)
    with trainer.stop_on_signals():
        trainer.train()
        trainer.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
