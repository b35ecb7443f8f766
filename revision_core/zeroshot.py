"""Zero-shot suggestions: score images against report-style prompts, no task training.

How a probability is formed: for each finding the positive prompts and the negative prompts
("no haemorrhages or exudates") are each embedded, averaged and re-normalised. An image's
probability for the finding is the two-way softmax of the model's scaled cosine similarities to the
positive and the negative embedding, i.e. sigmoid(scale * (sim_pos - sim_neg)). Findings can co-occur,
so each finding is judged against its own negation rather than by a softmax across findings; and a
report-trained model has learned negations, because reports state them.
"""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .imageio import ImageLoadError, load_image
from .labels import LabelSet, load_label_set
from .model import LoadedModel

_TEXT_CACHE: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}
_TEXT_LOCK = threading.Lock()


@torch.no_grad()
def embed_prompts(model, tokenizer, prompts: Sequence[str], device) -> torch.Tensor:
    """Mean of the normalised prompt embeddings, re-normalised (a prompt ensemble)."""
    tokens = tokenizer(list(prompts)).to(device)
    emb = F.normalize(model.encode_text(tokens).float(), dim=-1)
    return F.normalize(emb.mean(dim=0), dim=-1)


def label_set_embeddings(model, tokenizer, label_set: LabelSet, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(positive, negative) embeddings, each (findings x dim), in float32."""
    pos = torch.stack([embed_prompts(model, tokenizer, f.positive, device) for f in label_set.findings])
    neg = torch.stack([embed_prompts(model, tokenizer, f.negative, device) for f in label_set.findings])
    return pos, neg


def margins(image_features: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, scale: float) -> torch.Tensor:
    """Scaled similarity to the finding minus similarity to its negation (the log-odds)."""
    feats = F.normalize(image_features.float(), dim=-1)
    return scale * (feats @ pos.T - feats @ neg.T)


@dataclass
class BatchPrediction:
    """Per-finding probabilities for a list of inputs; rows of failed inputs are NaN with a message."""

    findings: list[str]
    probabilities: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)

    def as_records(self, names: Sequence[str]) -> list[dict]:
        rows = []
        for i, name in enumerate(names):
            if i in self.errors:
                rows.append({"input": name, "error": self.errors[i]})
            else:
                rows.append({"input": name, "probabilities": {
                    k: round(float(p), 6) for k, p in zip(self.findings, self.probabilities[i])}})
        return rows


class ZeroShotClassifier:
    """A loaded model plus a label set; prompt embeddings computed once per (model version, label set)."""

    def __init__(self, loaded: LoadedModel, label_set: LabelSet | str | None = None):
        self.loaded = loaded
        self.label_set = label_set if isinstance(label_set, LabelSet) else load_label_set(
            label_set or "revision_findings")
        key = (loaded.card.version, self.label_set.digest, str(loaded.device))
        with _TEXT_LOCK:
            if key not in _TEXT_CACHE:
                _TEXT_CACHE[key] = label_set_embeddings(loaded.model, loaded.tokenizer, self.label_set,
                                                        loaded.device)
        self.pos, self.neg = _TEXT_CACHE[key]
        self.scale = float(loaded.model.logit_scale.exp().clamp(max=100).item())

    @property
    def findings(self) -> list[str]:
        return self.label_set.keys

    @torch.no_grad()
    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed pixel batch (n, 3, H, W) -> normalised image features (n, dim), float32."""
        feats = self.loaded.model.encode_image(pixels.to(self.loaded.device, self.loaded.dtype))
        return F.normalize(feats.float(), dim=-1)

    def probabilities_from_features(self, features: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(margins(features, self.pos, self.neg, self.scale)).cpu().numpy()

    def predict_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        return self.probabilities_from_features(self.encode(pixels))

    def predict_images(self, images: Iterable, batch_size: int = 32) -> np.ndarray:
        """PIL images -> (n, findings) probabilities."""
        images = list(images)
        out = [self.predict_pixels(torch.stack([self.loaded.preprocess(im) for im in images[i:i + batch_size]]))
               for i in range(0, len(images), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.findings)), dtype=np.float32)

    def _decode(self, source) -> torch.Tensor | str:
        try:
            return self.loaded.preprocess(load_image(source))
        except ImageLoadError as exc:
            return str(exc)

    def predict_files(self, sources: Sequence, batch_size: int = 32, workers: int = 2) -> BatchPrediction:
        """Decode and preprocess the next batch in background threads while the model encodes this one.

        At most two batches of decoded pixels are held at once, so memory stays bounded for any n.
        """
        n = len(sources)
        probs = np.full((n, len(self.findings)), np.nan, dtype=np.float32)
        errors: dict[int, str] = {}
        chunks = [range(i, min(i + batch_size, n)) for i in range(0, n, batch_size)]
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            def submit(chunk):
                return [(i, pool.submit(self._decode, sources[i])) for i in chunk]

            pending = submit(chunks[0]) if chunks else []
            for c in range(len(chunks)):
                current, pending = pending, (submit(chunks[c + 1]) if c + 1 < len(chunks) else [])
                batch, index = [], []
                for i, future in current:
                    item = future.result()
                    if isinstance(item, str):
                        errors[i] = item
                    else:
                        batch.append(item)
                        index.append(i)
                if batch:
                    probs[index] = self.predict_pixels(torch.stack(batch))
        return BatchPrediction(self.findings, probs, errors)
