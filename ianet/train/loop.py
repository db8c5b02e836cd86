"""The training loop: data, AMP, checkpoints and exact resume, DDP, divergence guard.

``train(config, train_lists, out)`` runs one training process; under ``torchrun`` each
process runs it and they form a DDP group (rank 0 writes checkpoints and the log). Files in
``out``:

- ``log.csv``: one row per optimiser step (mean over processes): step, epoch, learning
  rates, weighted total and each output's loss, images/s;
- ``last.pth``: everything needed to resume (model, optimiser, schedule, gradient scaler,
  position in the data, random-generator states), every ``save_every`` steps, at each
  epoch's end and at the end;
- ``final.pth``: the trained model (weights and metadata) at the end;
- ``best.pth``: the model of the best validation S-measure (with validation lists).

Resuming ``last.pth`` continues where it stopped: ``N`` steps straight and ``N/2`` + resume
+ ``N/2`` give the same weights (on the CPU, bit for bit), also on another number of
processes, because the data order is a function of (seed, epoch) and independent of the
world size (``EpochBatchSampler``).
"""

from __future__ import annotations

import csv
import math
import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader

from ianet.atomic import atomic_output
from ianet.checkpoints import (
    check_state_dict,
    nonfinite,
    read_checkpoint,
    save_checkpoint,
    state_dict_of,
)
from ianet.data.augment import Augment
from ianet.data.dataset import TripletDataset, normalise_batch
from ianet.data.lists import Problem, Sample, load_lists
from ianet.device import resolve_device
from ianet.errors import InputError
from ianet.model import IANet, IANetOutput
from ianet.train.config import TrainConfig
from ianet.train.distributed import World, join_world, leave_world, mean_over_world, wait_for_all
from ianet.train.loss import deep_supervision_losses
from ianet.train.optim import build_optimizer, build_scheduler
from ianet.train.precision import autocast, resolve_precision
from ianet.train.sampler import EpochBatchSampler
from ianet.train.state import capture_rng, restore_rng
from ianet.train.validate import validate

OUTPUT_NAMES = IANetOutput._fields
LOG_COLUMNS = (
    "step",
    "epoch",
    "lr_encoder",
    "lr_decoder",
    "loss",
    *(f"loss_{name}" for name in OUTPUT_NAMES),
    "images_per_s",
)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the message says where and which checkpoint is good."""


@dataclass(frozen=True)
class RunInfo:
    """What a run is about to do (given to ``TrainingObserver.started``)."""

    samples: int
    skipped: tuple[Problem, ...]
    validation_samples: int
    steps_per_epoch: int
    total_steps: int
    start_step: int
    device: str
    precision: str
    world_size: int
    out: Path


@dataclass(frozen=True)
class StepReport:
    """One optimiser step, as logged."""

    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    losses: dict[str, float]
    lr_encoder: float
    lr_decoder: float
    images_per_second: float
    eta_seconds: float


@dataclass(frozen=True)
class TrainResult:
    """Where a finished run left its model."""

    final: Path
    steps: int
    epochs_done: int
    loss: float
    best_score: float | None


class TrainingObserver:
    """Receives a run's progress (rank 0 only). Subclass and override what you show."""

    def started(self, info: RunInfo) -> None:
        """The data is checked and the model built; training starts at ``info.start_step``."""

    def step(self, report: StepReport) -> None:
        """An optimiser step is done."""

    def validated(self, epoch: int, score: float, best: bool) -> None:
        """Validation S-measure after epoch ``epoch`` (0-based); ``best``: new best."""


def training_device(name: str, world: World) -> torch.device:
    """``ianet.device.resolve_device``; under DDP on CUDA each process takes its local rank."""
    device = resolve_device(name)
    if device.type == "cuda":
        if world.distributed and (name == "auto" or torch.device(name).index is None):
            device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    return device


class _CsvLog:
    """``log.csv``: rows of ``LOG_COLUMNS``; on resume, rows after the resumed step go."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        kept: list[list[str]] = []
        if resume_step is not None and path.is_file():
            with path.open(newline="") as file:
                rows = list(csv.reader(file))
            kept = [row for row in rows[1:] if row and int(row[0]) <= resume_step]
        with atomic_output(path) as temporary, temporary.open("w", newline="") as file:
            csv.writer(file).writerows([list(LOG_COLUMNS), *kept])
        self._file = path.open("a", newline="")
        self._writer = csv.writer(self._file)

    def write(self, report: StepReport) -> None:
        self._writer.writerow(
            [
                report.step,
                report.epoch,
                f"{report.lr_encoder:.6g}",
                f"{report.lr_decoder:.6g}",
                f"{report.loss:.6f}",
                *(f"{report.losses[name]:.6f}" for name in OUTPUT_NAMES),
                f"{report.images_per_second:.2f}",
            ]
        )
        self._file.flush()

    def close(self) -> None:
        self._file.close()


@dataclass
class _Position:
    """How far a run is: ``step`` steps in total, ``epoch_step`` of them in ``epoch``."""

    epoch: int = 0
    epoch_step: int = 0
    step: int = 0


class _Run:
    """One process's share of a training run (see ``train``)."""

    def __init__(
        self,
        config: TrainConfig,
        samples: list[Sample],
        validation: list[Sample],
        out: Path,
        world: World,
        device: torch.device,
        observer: TrainingObserver,
    ) -> None:
        self.config = config
        self.datasets = sorted({sample.dataset for sample in samples})
        self.out = out
        self.world = world
        self.device = device
        self.observer = observer
        self.precision = resolve_precision(config.precision, device)
        augment = Augment(config.hflip, config.min_scale, config.colour_jitter)
        dataset = TripletDataset(samples, config.size, augment, config.seed)
        self.sampler = EpochBatchSampler(
            len(samples), config.batch_size, config.seed, world.rank, world.size
        )
        if self.sampler.batches_per_epoch == 0:
            raise InputError(
                f"{len(samples)} training samples: fewer than one batch of {config.batch_size}"
            )
        self.loader = DataLoader(
            dataset,
            batch_sampler=self.sampler,
            num_workers=config.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=config.workers > 0,
            generator=torch.Generator(),  # keep the global generator out of worker seeding
        )
        self.validation_loader = None
        if validation and world.is_main:
            self.validation_loader = DataLoader(
                TripletDataset(validation, config.size),
                batch_size=config.batch_size,
                num_workers=config.workers,
                pin_memory=device.type == "cuda",
            )
        torch.manual_seed(config.seed)
        backbone = "none" if config.init is not None else config.backbone_weights
        self.model = IANet(config.variant, backbone_weights=backbone)
        if config.init is not None:
            initialise(self.model, config.init)
        self.model.to(device)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, config)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.precision == "fp16")
        self.weights = torch.tensor(config.output_weights, device=device)
        self.position = _Position()
        self.best_score: float | None = None
        self.good_checkpoint: tuple[int, Path] | None = None  # (step, path) to name on failure
        self.saved_step: int | None = None  # the step of out/last.pth
        self.total_steps = config.epochs * self.sampler.batches_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)

    def resume(self, path: Path) -> None:
        """Restore model, optimiser, schedule, scaler, position and RNG from ``last.pth``."""
        checkpoint = read_checkpoint(path)
        training = checkpoint.get("training")
        if not isinstance(training, dict) or "optimizer" not in checkpoint:
            raise InputError(f"{path}: not a training checkpoint (use a last.pth to resume)")
        if training["batch_size"] != self.config.batch_size:
            raise InputError(
                f"{path}: trained with batch_size {training['batch_size']}, now "
                f"{self.config.batch_size}; resume with the same batch size"
            )
        check_state_dict(self.model, checkpoint["model"], str(path))
        self.model.load_state_dict(checkpoint["model"], strict=True)
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        restore_rng(checkpoint["rng"])
        self.position = _Position(training["epoch"], training["epoch_step"], training["step"])
        self.best_score = training.get("best_score")
        self.good_checkpoint = (self.position.step, path)

    def _save(self, name: str, *, full: bool) -> Path:
        """Write ``out/name`` (rank 0): with ``full``, everything ``resume`` needs."""
        path = self.out / name
        meta = {
            "step": self.position.step,
            "epoch": self.position.epoch,
            "datasets": self.datasets,
            "train_config": self.config.to_dict(),
        }
        extra = {}
        if full:
            extra = {
                "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "rng": capture_rng(),
                "training": {
                    "epoch": self.position.epoch,
                    "epoch_step": self.position.epoch_step,
                    "step": self.position.step,
                    "batch_size": self.config.batch_size,
                    "world_size": self.world.size,
                    "best_score": self.best_score,
                },
            }
        bad = nonfinite(self.model.state_dict()) + nonfinite(extra.get("optimizer"), "optimizer.")
        if bad:
            where = f"step {self.position.step} (epoch {self.position.epoch + 1})"
            raise TrainingDiverged(
                f"{len(bad)} weight or optimiser tensor(s) became NaN or infinite by {where} "
                f"(e.g. {', '.join(name.rstrip('.') for name in bad[:3])}); {name} was not "
                f"written and {self._kept()}. Lower the learning rates or check the data"
            )
        save_checkpoint(path, self.model, meta=meta, **extra)
        if full:
            self.good_checkpoint = (self.position.step, path)
            self.saved_step = self.position.step
        return path

    def _save_last(self) -> None:
        if self.world.is_main and self.saved_step != self.position.step:
            self._save("last.pth", full=True)

    def _batches(self) -> Iterator[dict[str, Tensor]]:
        self.sampler.set_epoch(self.position.epoch, self.position.epoch_step)
        yield from self.loader

    def run(self, log: _CsvLog | None) -> TrainResult:
        config = self.config
        network: nn.Module = self.model
        if self.world.distributed:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            network = DistributedDataParallel(self.model, device_ids=device_ids)
        if config.compile:
            network = torch.compile(network)
        network.train()
        durations: deque[float] = deque(maxlen=20)
        loss = math.nan
        tick = time.perf_counter()
        while self.position.step < self.total_steps and self.position.epoch < config.epochs:
            for batch in self._batches():
                values = self._train_step(network, batch)
                self.position.step += 1
                self.position.epoch_step += 1
                now = time.perf_counter()
                durations.append(now - tick)
                tick = now
                loss = values[0]
                if self.world.is_main:
                    report = self._report(values, durations)
                    if log is not None:
                        log.write(report)
                    self.observer.step(report)
                if not all(math.isfinite(value) for value in values):
                    raise TrainingDiverged(self._divergence_message(values[0]))
                if config.save_every and self.position.step % config.save_every == 0:
                    self._save_last()
                if self.position.step >= self.total_steps:
                    break
            if self.position.epoch_step == self.sampler.batches_per_epoch:
                self._end_epoch(network)
                tick = time.perf_counter()
        self._save_last()
        final = self.out / "final.pth"
        if self.world.is_main:
            self._save("final.pth", full=False)
        wait_for_all(self.world)
        return TrainResult(final, self.position.step, self.position.epoch, loss, self.best_score)

    def _train_step(self, network: nn.Module, batch: dict[str, Tensor]) -> list[float]:
        """One optimiser step; returns [weighted total, loss of each output] (mean over
        processes, so every process sees the same numbers)."""
        image, flow, gt = normalise_batch(batch, self.device)
        with autocast(self.device, self.precision):
            outputs = network(image, flow)
        losses = deep_supervision_losses(outputs, gt)
        total = (self.weights * losses).sum()
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        values = torch.cat([total.detach()[None], losses.detach()])
        return mean_over_world(values, self.world).tolist()

    def _report(self, values: list[float], durations: deque[float]) -> StepReport:
        seconds_per_step = sum(durations) / len(durations)
        lr_encoder, lr_decoder = (group["lr"] for group in self.optimizer.param_groups)
        return StepReport(
            step=self.position.step,
            total_steps=self.total_steps,
            epoch=self.position.epoch,
            epochs=self.config.epochs,
            loss=values[0],
            losses=dict(zip(OUTPUT_NAMES, values[1:], strict=True)),
            lr_encoder=lr_encoder,
            lr_decoder=lr_decoder,
            images_per_second=self.config.batch_size / seconds_per_step,
            eta_seconds=seconds_per_step * (self.total_steps - self.position.step),
        )

    def _kept(self) -> str:
        """Which checkpoint training can resume from (its weights were checked finite)."""
        if self.good_checkpoint is None:
            return "no checkpoint was written before it"
        step, path = self.good_checkpoint
        return f"the last good checkpoint is {path} (step {step})"

    def _divergence_message(self, loss: float) -> str:
        where = f"step {self.position.step} (epoch {self.position.epoch + 1})"
        lr = ", ".join(f"{group['lr']:.3g}" for group in self.optimizer.param_groups)
        return (
            f"the loss became {loss} at {where}; training stopped and {self._kept()}. "
            f"Lower the learning rates (now {lr}) or check the data"
        )

    def _end_epoch(self, network: nn.Module) -> None:
        self.scheduler.step()
        self.position.epoch += 1
        self.position.epoch_step = 0
        if self.validation_loader is not None:
            score = validate(self.model, self.validation_loader, self.device, self.precision)
            best = self.best_score is None or score > self.best_score
            if best:
                self.best_score = score
                self._save("best.pth", full=False)
            self.observer.validated(self.position.epoch - 1, score, best)
        self._save_last()
        wait_for_all(self.world)
        network.train()


def initialise(model: IANet, source: str) -> None:
    """Load the weights of the checkpoint ``source`` into ``model`` (fine-tuning); a
    checkpoint of another variant raises ``InputError`` naming the keys that differ."""
    state = state_dict_of(read_checkpoint(source))
    check_state_dict(model, state, source)
    model.load_state_dict(
        {key: value.to(model.state_dict()[key].dtype) for key, value in state.items()}
    )


def _check_out(out: Path, resume: Path | None) -> None:
    existing = out / "last.pth"
    if resume is None and existing.exists():
        raise InputError(
            f"{existing} exists: pass --resume {existing} to continue that run, "
            "or choose another --out"
        )


def train(
    config: TrainConfig,
    train_lists: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    val_lists: Sequence[str | os.PathLike[str]] = (),
    resume: str | os.PathLike[str] | None = None,
    skip_bad_rows: bool = False,
    observer: TrainingObserver | None = None,
) -> TrainResult:
    """Train IANet on triplet lists; see the module's docstring for what lands in ``out``.

    Raises:
        ListError: the lists have bad rows (all of them named) and not ``skip_bad_rows``.
        InputError: unusable options, data or checkpoint.
        TrainingDiverged: the loss became NaN or infinite (the last good checkpoint stays).
    """
    out = Path(out)
    resume_path = Path(resume) if resume is not None else None
    auto_cuda = config.device == "auto" and torch.cuda.is_available()
    world = join_world("cuda" if auto_cuda or config.device.startswith("cuda") else "cpu")
    threads = torch.get_num_threads()
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    try:
        device = training_device(config.device, world)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        samples, skipped = load_lists(train_lists, skip_bad_rows=skip_bad_rows)
        validation: list[Sample] = []
        if val_lists:
            validation, skipped_validation = load_lists(val_lists, skip_bad_rows=skip_bad_rows)
            skipped += skipped_validation
        _check_out(out, resume_path)
        run = _Run(
            config,
            samples,
            validation,
            out,
            world,
            device,
            (observer or TrainingObserver()) if world.is_main else TrainingObserver(),
        )
        if resume_path is not None:
            run.resume(resume_path)
        log = None
        if world.is_main:
            out.mkdir(parents=True, exist_ok=True)
            log = _CsvLog(out / "log.csv", run.position.step if resume_path else None)
        run.observer.started(
            RunInfo(
                samples=len(samples),
                skipped=tuple(skipped),
                validation_samples=len(validation),
                steps_per_epoch=run.sampler.batches_per_epoch,
                total_steps=run.total_steps,
                start_step=run.position.step,
                device=str(device),
                precision=run.precision,
                world_size=world.size,
                out=out,
            )
        )
        try:
            return run.run(log)
        finally:
            if log is not None:
                log.close()
    finally:
        torch.set_num_threads(threads)
        leave_world(world)
