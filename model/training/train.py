"""Train SetSegNet on product sets synthesized from CCP.

Run from the repository root, in the training environment (Python 3.11 with
torch==2.13.0, CPU build):

    python -m model.training.train --dataset ../shared/datasets/ccp --out runs/v1 --minutes 90

`--sizes` trains at several input sides, one side per batch, so the same
weights can be exported and measured at each of them (model.training.choose_size).
`--init` starts from the weights of an earlier checkpoint of the same width.
`--prior` adds the network's ProductPrior and `--fine-prior` its FinePrior; a
checkpoint trained without them can still be the `--init`, and a prior it
lacks then starts from scratch, with its output at zero. A checkpoint
rebuilt from the committed ONNX file (model.training.recover) works as `--init`
too; its batch norms are folded, so they stay in evaluation mode throughout.
`--ema` keeps an exponential moving average of the weights and saves it as the
checkpoint's weights.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from model.training.net import SetSegNet
from model.training.synth import load_label_categories, load_photos, split_ids, synthesize_set

logger = logging.getLogger("train")

HINT_RATE = 0.5
"""Share of training sets that carry their category hint; the others get id 0."""

COARSE_WEIGHT = 0.5
"""Weight of each prior's per-cell product loss against the full-resolution loss."""


class SetStream(torch.utils.data.IterableDataset):
    """Endless stream of synthesized product sets as tensors.

    The input side is drawn from `sizes` once per `batch` sets, so every batch
    the DataLoader collates from one worker has a single side.
    """

    def __init__(
        self,
        dataset_dir: Path,
        ids: list[str],
        sizes: list[int],
        batch: int,
        seed: int,
        full_set_rate: float,
        empty_view_rate: float,
        busy_empty_rate: float = 0.0,
        dark_backdrop_rate: float = 0.0,
    ) -> None:
        self.dataset_dir, self.ids, self.sizes, self.batch, self.seed = dataset_dir, ids, sizes, batch, seed
        self.full_set_rate, self.empty_view_rate, self.busy_empty_rate = full_set_rate, empty_view_rate, busy_empty_rate
        self.dark_backdrop_rate = dark_backdrop_rate

    def __iter__(self):
        worker = torch.utils.data.get_worker_info()
        rng = np.random.default_rng(self.seed + (worker.id if worker else 0) * 7919)
        photos = load_photos(self.dataset_dir, self.ids)
        label_categories = load_label_categories(self.dataset_dir)
        emitted = 0
        while True:
            if emitted % self.batch == 0:
                size = int(rng.choice(self.sizes))
            photo = photos[rng.integers(len(photos))]
            product = synthesize_set(
                photo,
                label_categories,
                size,
                rng,
                full_set_rate=self.full_set_rate,
                empty_view_rate=self.empty_view_rate,
                busy_empty_rate=self.busy_empty_rate,
                dark_backdrop_rate=self.dark_backdrop_rate,
            )
            if product is None:
                continue
            emitted += 1
            category = product.category if rng.random() < HINT_RATE else 0
            yield (
                torch.from_numpy(product.images).permute(0, 3, 1, 2).contiguous(),
                torch.from_numpy(product.masks.astype(np.float32)),
                torch.from_numpy(product.valid.astype(np.float32)),
                torch.tensor(category, dtype=torch.int64),
                torch.from_numpy(product.others.astype(np.float32)),
            )


def normalize(images: torch.Tensor) -> torch.Tensor:
    """Scale uint8 RGB (0-255) to float32 in [-1, 1], the model's input range."""
    return images.float() / 127.5 - 1.0


def set_loss(
    logits: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor, others: torch.Tensor | None = None, other_weight: float = 1.0
) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice, averaged over present views.

    Args:
        logits: (B, V, S, S) float32.
        masks: (B, V, S, S) float32 truth in {0, 1}.
        valid: (B, V) float32, 1 on present views.
        others: (B, V, S, S) float32, 1 on garments other than the product; None for none.
        other_weight: weight of the cross-entropy on those pixels; 1 on all other pixels.
    """
    weight = None if others is None else 1.0 + (other_weight - 1.0) * others
    bce = F.binary_cross_entropy_with_logits(logits, masks, weight=weight, reduction="none").mean(dim=(2, 3))
    probs = torch.sigmoid(logits)
    overlap = (probs * masks).sum(dim=(2, 3))
    dice = 1 - (2 * overlap + 1) / (probs.sum(dim=(2, 3)) + masks.sum(dim=(2, 3)) + 1)
    return mean_over_present_views(bce + dice, valid)


def coarse_loss(coarse: torch.Tensor, masks: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy of the coarse logits against each cell's product share, over present views.

    Args:
        coarse: (B, V, h, w) float32 logits; S is a whole multiple of h and w.
        masks: (B, V, S, S) float32 truth in {0, 1}.
        valid: (B, V) float32, 1 on present views.
    """
    share = F.adaptive_avg_pool2d(masks, coarse.shape[-2:])
    bce = F.binary_cross_entropy_with_logits(coarse, share, reduction="none").mean(dim=(2, 3))
    return mean_over_present_views(bce, valid)


def mean_over_present_views(per_view: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Average (B, V) float32 per-view losses over the views where valid (B, V) is 1."""
    return (per_view * valid).sum() / valid.sum().clamp(min=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=Path("../shared/datasets/ccp"), help="CCP folder")
    parser.add_argument("--out", type=Path, required=True, help="folder for checkpoints and the log")
    parser.add_argument("--size", type=int, default=160, help="input side the checkpoint is exported at, divisible by 16")
    parser.add_argument("--sizes", type=str, default=None, help="comma-separated input sides to train at (default: --size)")
    parser.add_argument("--init", type=Path, default=None, help="checkpoint whose weights to start from")
    parser.add_argument("--width", type=int, default=16, help="channel multiplier of SetSegNet")
    parser.add_argument("--prior", action="store_true", help="add the ProductPrior (coarse map and cross-view matches)")
    parser.add_argument("--fine-prior", action="store_true", help="add the FinePrior (product map and matches at 1/8 scale)")
    parser.add_argument("--batch", type=int, default=12, help="product sets per step")
    parser.add_argument("--minutes", type=float, default=90.0, help="training time budget in minutes")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate of AdamW")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--workers", type=int, default=1, help="synthesis worker processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--other-weight", type=float, default=1.0, help="cross-entropy weight on the pixels of garments other than the product"
    )
    parser.add_argument(
        "--full-set-rate",
        type=float,
        default=0.0,
        help="extra share of sets that contain each view type once (studio, detail, packshot, street)",
    )
    parser.add_argument("--empty-view-rate", type=float, default=0.0, help="share of sets with one view that shows no product")
    parser.add_argument(
        "--busy-empty-rate",
        type=float,
        default=0.0,
        help="share of the product-free views cut from the street photo's background instead of a studio backdrop",
    )
    parser.add_argument(
        "--dark-backdrop-rate",
        type=float,
        default=0.0,
        help="share of studio backgrounds (product views and product-free frames) that are dark or colored",
    )
    parser.add_argument(
        "--init-lr-scale",
        type=float,
        default=1.0,
        help="learning rate of the weights taken from --init, as a share of --lr; new modules get --lr",
    )
    parser.add_argument("--ema", type=float, default=0.0, help="decay of the weight average saved as the checkpoint (0: none)")
    args = parser.parse_args()
    args.sizes = [int(side) for side in args.sizes.split(",")] if args.sizes else [args.size]
    if any(side % 16 for side in args.sizes):
        parser.error("every input side must be divisible by 16")
    if args.size not in args.sizes:
        parser.error(f"--size {args.size} is not among the trained sides {args.sizes}")
    if args.init_lr_scale != 1.0 and args.init is None:
        parser.error("--init-lr-scale applies to the weights of --init; give --init or leave it at 1")

    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(message)s",
        handlers=[logging.FileHandler(args.out / "train.log"), logging.StreamHandler()],
    )
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)

    train_ids, _ = split_ids(args.dataset)
    stream = SetStream(
        args.dataset,
        train_ids,
        args.sizes,
        args.batch,
        args.seed,
        args.full_set_rate,
        args.empty_view_rate,
        args.busy_empty_rate,
        args.dark_backdrop_rate,
    )
    loader = torch.utils.data.DataLoader(stream, batch_size=args.batch, num_workers=args.workers, persistent_workers=args.workers > 0)
    net = SetSegNet(args.width, prior=args.prior, fine_prior=args.fine_prior)
    args.folded_batch_norm = False
    new_modules: set[str] = set()
    if args.init is not None:
        start_from = torch.load(args.init, map_location="cpu")
        if start_from["settings"]["width"] != args.width:
            parser.error(f"--init checkpoint has width {start_from['settings']['width']}, not {args.width}")
        if start_from["settings"].get("prior", False) and not args.prior:
            parser.error("--init checkpoint was trained with the prior, so add --prior")
        if start_from["settings"].get("fine_prior", False) and not args.fine_prior:
            parser.error("--init checkpoint was trained with the fine prior, so add --fine-prior")
        keys = net.load_state_dict(start_from["state_dict"], strict=False)
        if keys.unexpected_keys or any(not key.startswith(("prior.", "fine_prior.")) for key in keys.missing_keys):
            parser.error(f"--init checkpoint does not match this network: missing {keys.missing_keys}, unexpected {keys.unexpected_keys}")
        new_modules = {key.split(".", 1)[0] for key in keys.missing_keys}
        args.folded_batch_norm = bool(start_from["settings"].get("folded_batch_norm", False))
        step_of_init = start_from["settings"]["step"]
        logger.info("initialized from %s (step %d, folded batch norm %s)", args.init, step_of_init, args.folded_batch_norm)
    average = WeightAverage(net, args.ema) if args.ema > 0 else None
    optimizer = torch.optim.AdamW(parameter_groups(net, new_modules, args.init_lr_scale), lr=args.lr, weight_decay=1e-4)
    logger.info(
        "parameters=%d train_photos=%d sizes=%s new_modules=%s", sum(p.numel() for p in net.parameters()), len(train_ids), args.sizes,
        sorted(new_modules),
    )

    budget = args.minutes * 60
    start = time.monotonic()
    step, running = 0, 0.0
    for images, masks, valid, category, others in loader:
        elapsed = time.monotonic() - start
        if elapsed > budget:
            break
        progress = elapsed / budget
        warmup = min(1.0, (step + 1) / 200)
        for group in optimizer.param_groups:
            group["lr"] = group["scale"] * args.lr * warmup * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))

        net.train()
        if args.folded_batch_norm:
            freeze_batch_norm(net)
        logits, coarse_maps = net(normalize(images), valid, category, with_coarse=True)
        loss = set_loss(logits, masks, valid, others, args.other_weight)
        for coarse in coarse_maps:
            loss = loss + COARSE_WEIGHT * coarse_loss(coarse, masks, valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if average is not None:
            average.update(net)

        step += 1
        running = 0.98 * running + 0.02 * loss.item() if step > 1 else loss.item()
        if step % 50 == 0:
            logger.info(
                "step=%d minutes=%.1f loss=%.4f lr=%.5f sets_per_s=%.1f",
                step,
                elapsed / 60,
                running,
                optimizer.param_groups[0]["lr"],
                step * args.batch / max(elapsed, 1e-6),
            )
        if step % 500 == 0:
            save_checkpoint(net, args, step, args.out / "last.pt", average)
    save_checkpoint(net, args, step, args.out / "last.pt", average)
    logger.info("finished step=%d minutes=%.1f", step, (time.monotonic() - start) / 60)


def parameter_groups(net: SetSegNet, new_modules: set[str], init_scale: float) -> list[dict]:
    """Split net's parameters into AdamW groups, each with a "scale" of the peak learning rate.

    Args:
        net: the network.
        new_modules: names of the top-level modules that --init did not fill ("fine_prior").
        init_scale: scale of every other parameter; the new modules get 1.
    """
    fresh = [param for name, param in net.named_parameters() if name.split(".", 1)[0] in new_modules]
    loaded = [param for name, param in net.named_parameters() if name.split(".", 1)[0] not in new_modules]
    groups = [{"params": loaded, "scale": init_scale}]
    if fresh:
        groups.append({"params": fresh, "scale": 1.0})
    return groups


class WeightAverage:
    """Exponential moving average of a network's floating-point parameters and buffers.

    Args:
        net: the network being trained; its state at construction starts the average.
        decay: weight of the old average at each update, in (0, 1).
    """

    def __init__(self, net: SetSegNet, decay: float) -> None:
        self.decay = decay
        self.state = {name: value.detach().clone() for name, value in net.state_dict().items()}

    @torch.no_grad()
    def update(self, net: SetSegNet) -> None:
        """Move the average towards the network's current weights; integer buffers are copied."""
        for name, value in net.state_dict().items():
            if value.is_floating_point():
                self.state[name].mul_(self.decay).add_(value, alpha=1.0 - self.decay)
            else:
                self.state[name].copy_(value)


def freeze_batch_norm(net: SetSegNet) -> None:
    """Put every batch norm in evaluation mode: running statistics are used and not updated."""
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.eval()


def save_checkpoint(net: SetSegNet, args: argparse.Namespace, step: int, path: Path, average: WeightAverage | None = None) -> None:
    """Write weights (the moving average when there is one) and the settings needed to rebuild the network."""
    settings = {
        "size": args.size,
        "sizes": args.sizes,
        "width": args.width,
        "prior": args.prior,
        "fine_prior": args.fine_prior,
        "step": step,
        "seed": args.seed,
        "init": str(args.init) if args.init else None,
        "other_weight": args.other_weight,
        "full_set_rate": args.full_set_rate,
        "empty_view_rate": args.empty_view_rate,
        "busy_empty_rate": args.busy_empty_rate,
        "dark_backdrop_rate": args.dark_backdrop_rate,
        "ema": args.ema,
        "init_lr_scale": args.init_lr_scale,
        "folded_batch_norm": args.folded_batch_norm,
    }
    state_dict = average.state if average is not None else net.state_dict()
    torch.save({"state_dict": state_dict, "settings": settings}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    (path.parent / "settings.json").write_text(json.dumps(settings, indent=2))


if __name__ == "__main__":
    main()
