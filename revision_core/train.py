"""Contrastive image-report training: the ReVision idea at demo scale.

open_clip's CLIP learns to match synthetic fundus photographs with their free-text reports. Reports
of different patients often say the same thing ("Normal fundus."), so a plain contrastive batch
treats many true matches as negatives. ``ReportAwareClipLoss`` keeps open_clip's ClipLoss logits but
makes every pair whose structured findings are identical a positive (a soft target), which removes
those false negatives. Every training image passes through a random camera (``synthetic.camera``), so
the model learns the retina rather than our renderer. Rendering and training the demo model take
about 48 minutes on two CPU cores.
"""
from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss

from . import model as _model_registry  # noqa: F401  (importing it registers our model configs and towers)
from .synthetic import EVAL_SEED_BASE, FINDINGS, generate_case
from .synthetic.camera import photograph_batch
from .towers import input_transform, prepared_input

import open_clip

VALIDATION_SEED_BASE = 900_000_000  # between training seeds and the evaluation seeds


class ReportAwareClipLoss(ClipLoss):
    """ClipLoss whose targets count pairs with the same findings signature as matches."""

    def forward(self, image_features, text_features, logit_scale, signatures=None, output_dict=False):
        if signatures is None:
            return super().forward(image_features, text_features, logit_scale, output_dict=output_dict)
        logits_per_image, logits_per_text = self.get_logits(image_features, text_features, logit_scale)
        same = (signatures[:, None] == signatures[None, :]).float()
        targets = same / same.sum(dim=1, keepdim=True)
        loss = 0.5 * (-(targets * F.log_softmax(logits_per_image, dim=-1)).sum(-1).mean()
                      - (targets * F.log_softmax(logits_per_text, dim=-1)).sum(-1).mean())
        return {"contrastive_loss": loss} if output_dict else loss


def findings_signature(labels: dict[str, int], severity: dict[str, str]) -> int:
    """An integer that is equal exactly when two cases have the same findings and DR severity."""
    code = 0
    for key in FINDINGS:
        code = code * 2 + int(labels[key])
    dr = severity.get("diabetic_retinopathy", "")
    return code * 4 + {"": 0, "mild": 1, "moderate": 2, "severe": 3}.get(dr, 0)


MIN_RENDER_SIZE = 224  # the generator's smallest size; smaller model inputs are downsampled from it


def _render(args):
    seed, size = args
    case = generate_case(seed, size=max(size, MIN_RENDER_SIZE))
    image = case.image if size >= MIN_RENDER_SIZE else cv2.resize(case.image, (size, size), interpolation=cv2.INTER_AREA)
    return image, case.report, [case.labels[k] for k in FINDINGS], findings_signature(case.labels, case.severity)


@dataclass
class RenderedSet:
    images: np.ndarray        # n x S x S x 3 uint8
    reports: list[str]
    labels: np.ndarray        # n x findings, 0/1
    signatures: np.ndarray    # n


def render_set(seeds: range, size: int, workers: int = 2, cache_dir: Path | None = None) -> RenderedSet:
    """Render (or reload from the cache) synthetic cases for the given seeds."""
    if max(seeds) >= EVAL_SEED_BASE:
        raise ValueError(f"Seeds >= {EVAL_SEED_BASE} are reserved for evaluation; pick training seeds below it.")
    tag = f"{seeds.start}-{seeds.stop}-{size}"
    if cache_dir is not None:
        cache = Path(cache_dir) / tag
        if (cache / "meta.json").is_file():
            meta = json.loads((cache / "meta.json").read_text())
            return RenderedSet(np.load(cache / "images.npy", mmap_mode="r"), meta["reports"],
                               np.asarray(meta["labels"]), np.asarray(meta["signatures"]))
    n = len(seeds)
    images = np.zeros((n, size, size, 3), dtype=np.uint8)
    reports, labels, sigs = [], [], []
    with Pool(workers) as pool:
        for i, (img, rep, lab, sig) in enumerate(pool.imap(_render, [(s, size) for s in seeds], chunksize=16)):
            images[i] = img
            reports.append(rep)
            labels.append(lab)
            sigs.append(sig)
    result = RenderedSet(images, reports, np.asarray(labels), np.asarray(sigs))
    if cache_dir is not None:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(cache / "images.npy", images)
        (cache / "meta.json").write_text(json.dumps({"reports": reports, "labels": labels, "signatures": sigs}))
    return result


def to_pixels(images: np.ndarray, mean, std) -> torch.Tensor:
    """uint8 N x H x W x 3 -> normalised float N x 3 x H x W (channels-last memory)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div_(255)
    x = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    return x.contiguous(memory_format=torch.channels_last)


@dataclass
class TrainConfig:
    """Defaults are the recipe of the bundled demo model (``python -m revision_core train --out DIR``)."""

    architecture: str = "revision-demo-cnn"
    n_images: int = 20000
    seed: int = 0
    steps: int = 560  # length of the cosine schedule
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 40
    threads: int = 1  # one thread was faster than two on a shared 2-core machine
    workers: int = 2
    false_negatives: str = "mask"  # "mask" (ReportAwareClipLoss) or "none" (plain ClipLoss)
    camera: bool = True  # pass every training image through a random camera (synthetic.camera.photograph)
    max_minutes: float | None = None  # a safety budget; stop_step is what makes a shortened run reproducible
    stop_step: int | None = None  # stop after this many steps without changing the schedule (0/None: run it all)
    validate_every: int = 140
    n_validation: int = 400
    cache_dir: str | None = "runs/cache"
    log_every: int = 25


def _batch_indices(n: int, batch_size: int, seed: int):
    """Endless sorted index batches: a fresh permutation of the n cases each epoch."""
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(n), 0
    while True:
        if pos + batch_size > len(order):
            order, pos = rng.permutation(n), 0
        yield np.sort(order[pos:pos + batch_size])
        pos += batch_size


def _param_groups(model, weight_decay):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "logit_scale" in name or "bn" in name or "norm" in name else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


@torch.no_grad()
def validation_auroc(model, tokenizer, data: RenderedSet, mean, std) -> dict[str, float]:
    """Zero-shot AUROC per finding on held-out synthetic cases (for monitoring training)."""
    from .evaluate import auroc
    from .labels import load_label_set
    from .zeroshot import label_set_embeddings, margins

    model.eval()
    label_set = load_label_set()
    pos, neg = label_set_embeddings(model, tokenizer, label_set, "cpu")
    feats = torch.cat([model.encode_image(to_pixels(data.images[i:i + 128], mean, std))
                       for i in range(0, len(data.reports), 128)])
    scores = margins(feats, pos, neg, 1.0).numpy()
    model.train()
    out = {}
    for j, key in enumerate(label_set.keys):
        y = data.labels[:, FINDINGS.index(key)]
        out[key] = auroc(y, scores[:, j]) if 0 < y.sum() < len(y) else float("nan")
    return out


def train(config: TrainConfig, out_dir: str | Path | None = None, log=print) -> dict:
    """Train a CLIP model on synthetic image-report pairs; save it in open_clip's local-dir layout."""
    torch.manual_seed(config.seed)
    torch.set_num_threads(config.threads)
    model = open_clip.create_model(config.architecture)
    model_cfg = open_clip.get_model_config(config.architecture)
    size = model.visual.preprocess_cfg["size"][0]
    mean, std = model.visual.preprocess_cfg["mean"], model.visual.preprocess_cfg["std"]
    tokenizer = open_clip.get_tokenizer(config.architecture)
    cache = Path(config.cache_dir) if config.cache_dir else None

    t0 = time.time()
    data = render_set(range(config.seed, config.seed + config.n_images), size, config.workers, cache)
    val = render_set(range(VALIDATION_SEED_BASE + config.seed, VALIDATION_SEED_BASE + config.seed + config.n_validation),
                     size, config.workers, cache)
    tokens = tokenizer(data.reports)
    log(f"rendered {len(data.reports)} training and {len(val.reports)} validation cases at {size}px "
        f"in {time.time() - t0:.0f}s")

    model = model.to(memory_format=torch.channels_last).train()
    opt = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr, betas=(0.9, 0.98), eps=1e-6)
    schedule = lambda step: min(1.0, (step + 1) / config.warmup) * 0.5 * (1 + math.cos(math.pi * min(step / config.steps, 1.0)))
    loss_fn = ReportAwareClipLoss()
    batches = _batch_indices(len(data.reports), config.batch_size, config.seed)
    history = []
    t_train = time.time()
    signatures_all = torch.from_numpy(data.signatures)
    # the next batch's camera pass and the tower's input transform run in a thread (on the other core)
    # while this step computes; the tower then takes the prepared input (towers.prepared_input)
    prefetch = ThreadPoolExecutor(1)
    transform = input_transform(model)

    @torch.no_grad()
    def photographed(step, idx):
        images = (photograph_batch(data.images[idx], np.random.default_rng([config.seed, step]))
                  if config.camera else data.images[idx])
        pixels = to_pixels(images, mean, std)
        return pixels if transform is None else transform(pixels).contiguous(memory_format=torch.channels_last)

    try:
        next_idx = next(batches)
        upcoming = prefetch.submit(photographed, 0, next_idx)
        for step in range(config.steps):
            idx, pixels = next_idx, upcoming.result()
            next_idx = next(batches)
            upcoming = prefetch.submit(photographed, step + 1, next_idx)
            for group in opt.param_groups:
                group["lr"] = config.lr * schedule(step)
            with prepared_input(model):
                img, txt, scale = model(pixels, tokens[idx])
            sig = signatures_all[idx] if config.false_negatives == "mask" else None
            loss = loss_fn(img, txt, scale, signatures=sig)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            history.append(loss.item())
            if step % config.log_every == 0 or step == config.steps - 1:
                rate = (step + 1) * config.batch_size / (time.time() - t_train)
                log(f"step {step:5d} loss {np.mean(history[-config.log_every:]):.4f} scale {scale.item():.1f} "
                    f"{rate:.0f} img/s elapsed {(time.time() - t_train) / 60:.1f} min")
            if config.validate_every and (step + 1) % config.validate_every == 0:
                aucs = validation_auroc(model, tokenizer, val, mean, std)
                log("validation AUROC " + " ".join(f"{k}={v:.3f}" for k, v in aucs.items())
                    + f" mean={np.nanmean(list(aucs.values())):.3f}")
            if config.stop_step and step + 1 >= config.stop_step:
                log(f"stopping at step {step}: --stop-step {config.stop_step}")
                break
            if config.max_minutes and (time.time() - t_train) / 60 > config.max_minutes:
                log(f"stopping at step {step}: time budget of {config.max_minutes} min reached")
                break
    finally:
        prefetch.shutdown(cancel_futures=True)
    model.eval()
    summary = {"steps": step + 1, "first_loss": float(np.mean(history[:20])), "last_loss": float(np.mean(history[-20:])),
               "train_minutes": round((time.time() - t_train) / 60, 2), "loss_history": history}
    if out_dir is not None:
        save_local_dir(model, model_cfg, out_dir, config, summary)
    summary["model"] = model
    return summary


def save_local_dir(model, model_cfg: dict, out_dir: str | Path, config: TrainConfig, summary: dict) -> Path:
    """Write open_clip's local-dir layout: open_clip_config.json + open_clip_model.safetensors (fp16)."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))
    cfg = {
        "model_name": "revision-demo" if config.architecture == "revision-demo-cnn" else out.name,
        "architecture": config.architecture,
        "model_cfg": model_cfg,
        "preprocess_cfg": {k: v for k, v in model.visual.preprocess_cfg.items() if k in ("mean", "std", "interpolation", "resize_mode")},
        "training": {k: v for k, v in vars(config).items()} | {
            "steps_done": summary["steps"], "first_loss": summary["first_loss"], "last_loss": summary["last_loss"],
            "train_minutes": summary["train_minutes"], "data": "revision_core.synthetic, seeds "
            f"{config.seed}..{config.seed + config.n_images - 1}"},
        "disclaimer": "Demo model trained on synthetic images only; not for clinical use.",
    }
    (out / "open_clip_config.json").write_text(json.dumps(cfg, indent=2))
    return out
