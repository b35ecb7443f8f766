"""Display-ready saliency maps for many photographs, on every CPU core.

Why processes: one map is a few hundred small forward and backward passes of the image tower, and on a CPU
one torch thread per attribution is fastest when the cores are shared (``saliency.explain``'s note), so
photographs go to a pool of worker processes with one torch thread each. Each worker gets a copy of what an
attribution needs (the float32 image tower, the preprocessing, the findings' prompt directions), never the
whole model, and loads nothing from disk but the photographs. With CUDA (or MPS) the device is the parallel
part: the maps are computed in this process, one after another.

A map is returned at its display size (``saliency_render.display_png``: longest side 512, the retina's
attribution bands as grey levels), so no full-resolution array is made and what is stored is what the
browser draws.
"""
from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


@dataclass(frozen=True)
class MapJob:
    """One photograph and the findings to explain in it (most probable first)."""

    key: Any  # the caller's, returned with the result (e.g. a case id)
    source: Any  # what ``imageio.load_image`` reads: a path, an ``OrientedFile``, bytes
    findings: tuple[str, ...]


@dataclass(frozen=True)
class Map:
    finding: str
    png: bytes = field(repr=False)  # the display-ready map
    width: int
    height: int
    params: dict


@dataclass(frozen=True)
class MapResult:
    key: Any
    maps: tuple[Map, ...] = ()
    error: str | None = None  # why the photograph has no maps (it could not be read, or the method failed)


def default_workers(device=None) -> int:
    """Every core this process may use on a CPU; one process on a GPU."""
    if device is not None and getattr(device, "type", str(device)) != "cpu":
        return 1
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _kit(loaded, classifier) -> dict:
    """What an attribution needs, picklable for a worker process (on the CPU)."""
    from .saliency import float32_tower

    return {"tower": float32_tower(loaded).cpu(), "preprocess": loaded.preprocess,
            "findings": list(classifier.findings), "pos": classifier.pos.cpu(), "neg": classifier.neg.cpu(),
            "scale": float(classifier.scale)}


def _models(kit: dict):
    """(loaded, classifier) stand-ins from a kit: the attributes ``saliency.explain`` uses, nothing more."""
    import torch

    loaded = SimpleNamespace(model=SimpleNamespace(visual=kit["tower"]), preprocess=kit["preprocess"],
                             device=torch.device("cpu"), dtype=torch.float32)
    classifier = SimpleNamespace(findings=kit["findings"], pos=kit["pos"], neg=kit["neg"], scale=kit["scale"])
    return loaded, classifier


_WORKER: dict = {}


def _init_worker(kit: dict) -> None:
    import torch

    torch.set_num_threads(1)
    _WORKER["models"] = _models(kit)


def _maps(loaded, classifier, job: MapJob, method: str, settings: dict, threads: int | None) -> MapResult:
    """The job's maps, or the reason there are none."""
    from .imageio import load_image
    from .saliency import explain_findings
    from .saliency_render import display_png, display_size

    try:
        image = load_image(job.source)
        maps = []
        for sal in explain_findings(loaded, classifier, image, job.findings, method, size=display_size(*image.size),
                                    threads=threads, **settings):
            png, w, h = display_png(image, sal.map, seen=sal.seen)
            maps.append(Map(sal.finding, png, w, h, dict(sal.params)))
        return MapResult(job.key, tuple(maps))
    except Exception as exc:  # noqa: BLE001 - reported per photograph, never fatal (the caller stores the rest)
        return MapResult(job.key, error=f"{type(exc).__name__}: {exc}")


def _ready() -> None:
    """Nothing: submitted once per worker by ``MapPool.start`` so that every worker process starts at once."""


def _worker_maps(job: MapJob, method: str, settings: dict) -> MapResult:
    loaded, classifier = _WORKER["models"]
    return _maps(loaded, classifier, job, method, settings, None)


class MapPool:
    """Worker processes that compute maps (``workers`` > 1), or this process; use as a context manager."""

    def __init__(self, loaded, classifier, *, method: str, workers: int | None = None, **settings):
        self.loaded, self.classifier, self.method, self.settings = loaded, classifier, method, settings
        self.workers = default_workers(loaded.device) if workers is None else max(1, int(workers))
        if loaded.device.type != "cpu":
            self.workers = 1
        self._pool = None

    def __enter__(self) -> MapPool:
        return self

    def start(self) -> None:
        """Start the worker processes now (they import torch and unpickle the tower, seconds on a busy machine),
        so that this overlaps the caller's own work, e.g. the first batch's probabilities."""
        if self.workers > 1 and self._pool is None:
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_worker, initargs=(_kit(self.loaded, self.classifier),))
            for _ in range(self.workers):
                self._pool.submit(_ready)

    def __exit__(self, *exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def run(self, jobs: Sequence[MapJob]) -> Iterator[MapResult]:
        """Each job's result, in the order they finish (with one worker: in the jobs' order)."""
        if self.workers == 1 or len(jobs) == 1 and self._pool is None:
            threads = 1 if self.loaded.device.type == "cpu" else None  # one thread a map, as in the workers
            for job in jobs:
                yield _maps(self.loaded, self.classifier, job, self.method, self.settings, threads)
            return
        self.start()  # spawn: a clean process (torch's threads do not survive a fork)
        futures = [self._pool.submit(_worker_maps, job, self.method, self.settings) for job in jobs]
        for future in as_completed(futures):
            yield future.result()
