"""Triplet lists: the text files that name the samples of a training or test set.

One sample per line, columns separated by spaces: ``img_path gt_path flow_path``.

- A row with two columns (``img gt``) is a still image: its flow input is zero.
- ``-`` in the gt or flow column means "none": ``img - flow`` is a video frame without
  ground truth (enough for ``ianet-stream test``, which then names its output after the
  image), ``img gt -`` is the same as ``img gt``.
- Relative paths resolve against the list file's folder, then the current directory.
- The dataset name of a list is its folder's name; the sequence of a row is the folder two
  levels above the image as written (``img_path.split('/')[-3]``), else that of the
  resolved path.

``read_list`` parses (and reports malformed rows), ``check_samples`` then opens every
file's header on a thread pool; both report every problem with ``file:line`` at once.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ianet.errors import InputError

NONE_COLUMN = "-"


@dataclass(frozen=True)
class Sample:
    """One row of a triplet list, its paths resolved."""

    image: Path
    gt: Path | None
    flow: Path | None
    dataset: str
    sequence: str
    list_path: Path
    line: int

    @property
    def location(self) -> str:
        """``list.txt:12``, for messages."""
        return f"{self.list_path}:{self.line}"

    @property
    def output_name(self) -> str:
        """File name of this sample's saliency map: the GT's basename, else the image stem."""
        return self.gt.name if self.gt is not None else f"{self.image.stem}.png"


@dataclass(frozen=True)
class Problem:
    """Something wrong with one row of a list (``line`` 0: the list itself)."""

    list_path: Path
    line: int
    message: str

    def __str__(self) -> str:
        where = f"{self.list_path}:{self.line}" if self.line else str(self.list_path)
        return f"{where}: {self.message}"


class ListError(InputError):
    """Rows of one or more lists cannot be used; ``problems`` holds every one of them."""

    def __init__(
        self, problems: Sequence[Problem], hint: str = "fix them or pass --skip-bad-rows"
    ) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        lines = "\n".join(f"  {problem}" for problem in self.problems)
        super().__init__(f"{count} bad row{'s' * (count != 1)} ({hint}):\n{lines}")


def _resolve(written: str, folder: Path) -> Path:
    path = Path(written).expanduser()
    if path.is_absolute():
        return path
    beside_list = folder / path
    if beside_list.exists() or not path.exists():
        return beside_list
    return path.absolute()


def _sequence_name(written: str, resolved: Path) -> str:
    parts = written.split("/")
    if len(parts) >= 3 and parts[-3] not in ("", ".", ".."):
        return parts[-3]
    return resolved.parts[-3] if len(resolved.parts) >= 3 else resolved.parent.name


def parse_list(path: str | os.PathLike[str]) -> tuple[list[Sample], list[Problem]]:
    """Parse a triplet list without touching the files it names.

    Returns:
        The well-formed rows as samples, and a problem for every malformed row.

    Raises:
        InputError: the list itself cannot be read.
    """
    list_path = Path(path)
    try:
        text = list_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{list_path}: no such list file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{list_path}: cannot read the list ({error})") from None
    folder = list_path.absolute().parent
    dataset = Path(os.path.abspath(list_path)).parent.name  # symlinks kept, ".." applied
    samples: list[Sample] = []
    problems: list[Problem] = []
    for number, row in enumerate(text.splitlines(), start=1):
        columns = row.split()
        if not columns:
            continue
        if len(columns) not in (2, 3):
            problems.append(
                Problem(
                    list_path,
                    number,
                    f"expected 2 or 3 columns (img gt [flow]), got {len(columns)}",
                )
            )
            continue
        if columns[0] == NONE_COLUMN:
            problems.append(Problem(list_path, number, "the image column cannot be '-'"))
            continue
        image = _resolve(columns[0], folder)
        gt = None if columns[1] == NONE_COLUMN else _resolve(columns[1], folder)
        flow = None
        if len(columns) == 3 and columns[2] != NONE_COLUMN:
            flow = _resolve(columns[2], folder)
        samples.append(
            Sample(image, gt, flow, dataset, _sequence_name(columns[0], image), list_path, number)
        )
    if not samples and not problems:
        problems.append(Problem(list_path, 0, "no rows"))
    return samples, problems


def read_list(path: str | os.PathLike[str]) -> list[Sample]:
    """Parse a triplet list; raises ``ListError`` naming every malformed row."""
    samples, problems = parse_list(path)
    if problems:
        raise ListError(problems)
    return samples


def _header_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def _row_problems(sample: Sample, require_gt: bool) -> list[str]:
    messages: list[str] = []
    sizes: dict[str, tuple[int, int]] = {}
    columns = {"image": sample.image, "gt": sample.gt, "flow": sample.flow}
    if require_gt and sample.gt is None:
        messages.append("no ground truth ('-'), which training and validation need")
    for name, path in columns.items():
        if path is None:
            continue
        if not path.is_file():
            messages.append(f"{name} {path}: no such file")
            continue
        try:
            sizes[name] = _header_size(path)
        except (OSError, SyntaxError, ValueError) as error:
            messages.append(f"{name} {path}: not a readable image ({error})")
    if "image" in sizes and "gt" in sizes and sizes["image"] != sizes["gt"]:
        (iw, ih), (gw, gh) = sizes["image"], sizes["gt"]
        messages.append(f"gt is {gw}x{gh} but the image is {iw}x{ih}")
    return messages


def check_samples(
    samples: Sequence[Sample], *, require_gt: bool = True, workers: int = 16
) -> list[Problem]:
    """Check that every file of every row exists and opens as an image (headers only).

    Also reports rows whose GT and image differ in size, and (with ``require_gt``) rows
    without GT. Returns the problems in list order; an empty list means all is well.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = pool.map(lambda sample: _row_problems(sample, require_gt), samples)
        return [
            Problem(sample.list_path, sample.line, message)
            for sample, messages in zip(samples, results, strict=True)
            for message in messages
        ]


def load_lists(
    paths: Iterable[str | os.PathLike[str]],
    *,
    require_gt: bool = True,
    skip_bad_rows: bool = False,
    workers: int = 16,
) -> tuple[list[Sample], list[Problem]]:
    """Read and check several lists before any work starts.

    Returns:
        The usable samples of all lists in order, and the problems of the rows left out
        (empty unless ``skip_bad_rows``).

    Raises:
        ListError: some rows are bad and ``skip_bad_rows`` is false, or no row is usable.
    """
    paths = list(paths)
    if not paths:
        raise InputError("no list given")
    samples: list[Sample] = []
    problems: list[Problem] = []
    for path in paths:
        parsed, malformed = parse_list(path)
        samples += parsed
        problems += malformed
    problems += check_samples(samples, require_gt=require_gt, workers=workers)
    if problems and not skip_bad_rows:
        raise ListError(problems)
    bad = {(problem.list_path, problem.line) for problem in problems}
    usable = [sample for sample in samples if (sample.list_path, sample.line) not in bad]
    if not usable:
        raise ListError(problems, hint="no usable row is left")
    return usable, problems
