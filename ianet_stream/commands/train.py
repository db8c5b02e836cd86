"""``ianet-stream train``: train IANet on triplet lists (one process, or DDP under torchrun).

Options come from the defaults (the reference recipe), then ``--config YAML``, then
``--set KEY=VALUE``, then the dedicated flags: the command line wins.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape

from ianet_stream.console import console

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

    from ianet.train import RunInfo, StepReport

FLAG_OPTIONS = (
    # (flag, config key, type, metavar, help)
    ("--variant", "variant", str, "NAME", "ianet (the paper's network), lite or lite-efficientnet"),
    ("--size", "size", int, "N", "training resolution (square), default 512"),
    ("--batch-size", "batch_size", int, "N", "global batch, default 8"),
    ("--epochs", "epochs", int, "N", "epochs, default 20"),
    ("--max-steps", "max_steps", int, "N", "stop after this many steps in total"),
    ("--backbone-weights", "backbone_weights", str, "W", "auto (ImageNet's), none or PATH"),
    ("--init", "init", str, "CKPT", "fine-tune: start from this checkpoint or builtin:NAME"),
    ("--device", "device", str, "D", "auto, cpu, cuda, cuda:1, ..."),
    ("--workers", "workers", int, "N", "data-loading processes (default: one per core, at most 4)"),
    ("--threads", "threads", int, "N", "torch CPU threads per process (default: one per core)"),
    ("--precision", "precision", str, "P", "auto, fp32, bf16 or fp16"),
    ("--seed", "seed", int, "S", "seed of weights, data order and augmentation, default 0"),
    ("--save-every", "save_every", int, "N", "write last.pth every N steps (0: epoch ends)"),
    ("--lr-encoder", "lr_encoder", float, "LR", "learning rate of the encoders, default 5e-4"),
    ("--lr-decoder", "lr_decoder", float, "LR", "learning rate of the rest, default 5e-3"),
)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="train IANet on triplet lists",
        description=(
            "Train IANet on 'img gt flow' triplet lists. Defaults reproduce the reference "
            "checkpoints' recipe (configs/train-paper.yaml). Writes DIR/log.csv, DIR/last.pth "
            "(resumable), DIR/final.pth and, with --val-list, DIR/best.pth. For several GPUs "
            "run the same command under 'torchrun --nproc-per-node N -m ianet_stream.cli'."
        ),
    )
    parser.add_argument(
        "--train-list",
        action="append",
        required=True,
        metavar="FILE",
        type=Path,
        help="a triplet list (repeat for several)",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output folder")
    parser.add_argument("--config", type=Path, metavar="YAML", help="a training config file")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override any config key (YAML value), e.g. --set loss_weights=paper",
    )
    for flag, key, kind, metavar, text in FLAG_OPTIONS:
        parser.add_argument(flag, dest=key, type=kind, metavar=metavar, help=text)
    parser.add_argument(
        "--compile", action=argparse.BooleanOptionalAction, default=None, help="torch.compile"
    )
    parser.add_argument("--resume", type=Path, metavar="PATH", help="a last.pth to continue")
    parser.add_argument(
        "--val-list",
        action="append",
        default=[],
        type=Path,
        metavar="FILE",
        help="validation list: S-measure after each epoch, best.pth",
    )
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="leave out (and list) unusable rows"
    )
    parser.set_defaults(run=run)
    return parser


def read_config(path: Path | None, overrides: list[str], flags: dict[str, Any]) -> Any:
    """Defaults <- YAML file <- ``--set`` pairs <- flags; a ``TrainConfig``.

    Raises:
        ConfigError: unreadable YAML, unknown keys or bad values, naming where.
    """
    import yaml

    from ianet.train.config import TrainConfig
    from ianet_stream.config import load_yaml
    from ianet_stream.errors import ConfigError

    values: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = load_yaml(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ConfigError(f"{path}: cannot read ({error.strerror})") from None
        except yaml.YAMLError as error:
            raise ConfigError(f"{path}: not valid YAML ({error})".replace("\n", " ")) from None
        if not isinstance(loaded, dict | None):
            raise ConfigError(f"{path}: expected a mapping of options")
        try:
            config = TrainConfig.from_mapping(loaded or {})
        except ValueError as error:
            raise ConfigError(f"{path}: {error}") from None
        values = config.to_dict()
    for pair in overrides:
        key, sep, text = pair.partition("=")
        if not sep:
            raise ConfigError(f"--set {pair}: expected KEY=VALUE")
        values[key.strip()] = load_yaml(text)
    values.update({key: value for key, value in flags.items() if value is not None})
    try:
        return TrainConfig.from_mapping(values)
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _duration(seconds: float) -> str:
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}"


class TrainView:
    """Shows a run on stderr: what it trains on, a progress bar with loss, learning rate,
    images/s and ETA, validation scores. Implements ``ianet.train.TrainingObserver``."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self.console = console
        self.quiet = quiet
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    def __enter__(self) -> TrainView:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def started(self, info: RunInfo) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        if self.quiet:
            return
        for problem in info.skipped:
            self.console.print(f"skipped {problem}", highlight=False, markup=False)
        validation = f", {info.validation_samples} for validation" * bool(info.validation_samples)
        self.console.print(
            f"training on {info.samples} samples{validation}: {info.steps_per_epoch} "
            f"step{'s' * (info.steps_per_epoch != 1)} per epoch, {info.total_steps} in all, "
            f"on {info.device} ({info.precision}"
            f"{f', {info.world_size} processes' * (info.world_size > 1)}) -> {info.out}",
            highlight=False,
            markup=False,
        )
        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  lr {task.fields[lr]}"),
            TextColumn("{task.fields[speed]} img/s  ETA {task.fields[eta]}"),
            console=self.console,
        )
        self.task = self.progress.add_task(
            "train",
            total=info.total_steps,
            completed=info.start_step,
            epoch="-",
            loss="-",
            lr="-",
            speed="-",
            eta="-",
        )
        self.progress.start()

    def step(self, report: StepReport) -> None:
        if self.progress is None or self.task is None:
            return
        self.progress.update(
            self.task,
            completed=report.step,
            epoch=f"{report.epoch + 1}/{report.epochs}",
            loss=f"{report.loss:.4f}",
            lr=f"{report.lr_encoder:.2g}/{report.lr_decoder:.2g}",
            speed=f"{report.images_per_second:.1f}",
            eta=_duration(report.eta_seconds),
        )

    def validated(self, epoch: int, score: float, best: bool) -> None:
        if not self.quiet:
            mark = " (best so far: best.pth)" if best else ""
            self.console.print(f"epoch {epoch + 1}: validation S-measure {score:.4f}{mark}")


def run(args: argparse.Namespace) -> int:
    from ianet.train import TrainingDiverged, train

    flags = {key: getattr(args, key) for _, key, _, _, _ in FLAG_OPTIONS}
    flags["compile"] = args.compile
    config = read_config(args.config, args.overrides, flags)
    main_process = os.environ.get("RANK", "0") == "0"
    view = TrainView(console, quiet=args.quiet or not main_process)
    try:
        with view:
            result = train(
                config,
                args.train_list,
                args.out,
                val_lists=args.val_list,
                resume=args.resume,
                skip_bad_rows=args.skip_bad_rows,
                observer=view,
            )
    except TrainingDiverged as error:
        console.print("[bold red]error:[/]", escape(str(error)), highlight=False)
        return 1
    if main_process and not args.quiet:
        best = f", best S-measure {result.best_score:.4f}" if result.best_score is not None else ""
        console.print(
            f"done: {result.final} after {result.steps} steps (loss {result.loss:.4f}{best})",
            highlight=False,
        )
    return 0
