"""A folder run on a Ray cluster: one task per clip, run by a pool of long-lived actors.

Each actor (a ``ClipWorker``: ``cpus_per_worker`` CPUs and ``gpus_per_worker`` GPUs of the
cluster) runs whole clips one after another, the pipeline in order as in a local run; its
process keeps its imports, its CUDA context and its caches from clip to clip: the stages
are opened for each clip, as in a local run, but the saliency model stays loaded in the
process, so each actor reads and prepares it once. A clip whose actor
died (killed, out of memory, node lost) is given to a fresh actor, up to ``retries``
times; a clip that fails on its own (a corrupt file, a stage's error) is reported with its
reason and not retried. Sinks write under temporary names, so a clip cut short never
leaves a final output and ``--skip-existing`` resumes a run. Ctrl-C aborts the clips in
flight (their outputs discarded) and starts no other.

Ray is optional (``pip install 'ianet-stream[ray]'``) and imported only when this executor
runs. Every node must have ianet-stream installed and see the clips and the output folder
at the same paths (a shared filesystem).
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from types import ModuleType
from typing import Any

from ianet_stream.errors import ConfigError, InputError
from ianet_stream.folder_runs import ClipJob, ClipResult, run_clip
from ianet_stream.runner import STOP_SIGNALS, handling_signals

INSTALL_HINT = "pip install 'ianet-stream[ray]'"
WAIT_S = 0.2  # how often the driver and the workers look up to notice a stop
STOP_GRACE_S = 5.0  # how long a stopped run waits for its clips to discard their outputs
ABORT_SIGNAL = signal.SIGUSR1  # a worker's signal to itself: abort the clip (TERM is Ray's)


def import_ray() -> ModuleType:
    """The ``ray`` module, or a one-line error saying how to install it."""
    try:
        import ray
    except ImportError:
        message = f"--executor ray needs Ray, which is not installed: {INSTALL_HINT}"
        raise ConfigError(message) from None
    return ray


class StopFlag:
    """A Ray actor the driver sets when the run is stopped (Ctrl-C); the workers poll it."""

    def __init__(self) -> None:
        self.stopped = False

    def set(self) -> None:
        self.stopped = True

    def is_set(self) -> bool:
        return self.stopped


class ClipWorker:
    """A Ray actor that runs whole clips, one at a time, in its own long-lived process.

    When ``stop_flag`` is set, the clip being run is aborted as a signal aborts a local
    one (its outputs discarded): a watcher thread sends the process ``SIGUSR1``, which the
    pipeline, running in the actor's main thread, handles while the clip runs.
    """

    def __init__(self, stop_flag: Any) -> None:
        self.stop_flag = stop_flag

    def run(self, job: ClipJob) -> ClipResult:
        """The clip's pipeline from its first frame to its last."""
        import ray

        finished = threading.Event()

        def abort_when_stopped() -> None:
            while not finished.wait(WAIT_S):
                if ray.get(self.stop_flag.is_set.remote()) and not finished.is_set():
                    os.kill(os.getpid(), ABORT_SIGNAL)
                    return

        threading.Thread(target=abort_when_stopped, daemon=True).start()
        try:
            return run_clip(job, quiet=True, signals=(ABORT_SIGNAL,))
        finally:
            finished.set()


def absolute_paths(job: ClipJob) -> ClipJob:
    """``job`` with absolute paths: a worker in another working directory (or on another
    node, the files on a shared filesystem) reads and writes the same files."""
    return replace(
        job,
        clip=os.path.abspath(job.clip),
        pipeline=os.path.abspath(job.pipeline),
        paths=tuple((key, os.path.abspath(path)) for key, path in job.paths),
    )


def worker_count(
    resources: dict[str, float], cpus_per_worker: float, gpus_per_worker: float
) -> int:
    """How many workers a cluster with ``resources`` (``{"CPU": 8, "GPU": 2}``) holds."""
    count = resources.get("CPU", 0) / cpus_per_worker
    if gpus_per_worker > 0:
        count = min(count, resources.get("GPU", 0) / gpus_per_worker)
    return math.floor(count + 1e-9)


@dataclass(frozen=True)
class RayExecutor:
    """Runs clips on Ray: ``run_folder(jobs, executor=RayExecutor(...))``.

    ``address``: an existing cluster's (``"auto"``: the one this machine belongs to);
    ``None`` starts a local Ray instance with a CPU per core (and at least a worker's worth
    per worker asked for). ``workers``: the actors (default: as many as the cluster holds).
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0
    retries: int = 2

    def __call__(self, jobs: Sequence[ClipJob]) -> Iterator[ClipResult]:
        ray = import_ray()
        started_ray = self._connect(ray)
        try:
            yield from self._run(ray, jobs)
        finally:
            if started_ray:
                ray.shutdown()

    def _connect(self, ray: ModuleType) -> bool:
        """Join the cluster (or start a local instance); whether this call started Ray."""
        if ray.is_initialized():
            return False
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
        if self.address is not None:
            try:
                ray.init(address=self.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as error:
                first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
                raise InputError(f"--ray-address {self.address}: {first_line}") from None
            return True
        cpus = max(os.cpu_count() or 1, math.ceil((self.workers or 0) * self.cpus_per_worker))
        ray.init(num_cpus=cpus, include_dashboard=False, **quiet)
        return True

    def _run(self, ray: ModuleType, jobs: Sequence[ClipJob]) -> Iterator[ClipResult]:
        resources = ray.cluster_resources()
        count = self.workers or worker_count(resources, self.cpus_per_worker, self.gpus_per_worker)
        if count < 1:
            raise ConfigError(
                f"the Ray cluster has {resources.get('CPU', 0):g} CPUs and "
                f"{resources.get('GPU', 0):g} GPUs: no room for a worker of "
                f"{self.cpus_per_worker:g} CPUs and {self.gpus_per_worker:g} GPUs"
            )
        actor_class = ray.remote(ClipWorker).options(
            num_cpus=self.cpus_per_worker,
            num_gpus=self.gpus_per_worker,
            max_restarts=0,
            max_task_retries=0,
        )
        stop_flag = ray.remote(StopFlag).options(num_cpus=0).remote()
        queue = deque((job, 1) for job in jobs)
        idle = [actor_class.remote(stop_flag) for _ in range(min(count, len(jobs)))]
        running: dict[Any, tuple[Any, ClipJob, int]] = {}  # task -> (actor, job, attempt)
        stopping = False

        def stop(signum: int, frame: Any) -> None:
            nonlocal stopping
            stopping = True

        try:
            with handling_signals(STOP_SIGNALS, stop):
                while (queue or running) and not stopping:
                    while idle and queue:
                        actor = idle.pop()
                        job, attempt = queue.popleft()
                        running[actor.run.remote(absolute_paths(job))] = (actor, job, attempt)
                    finished, _ = ray.wait(list(running), num_returns=1, timeout=WAIT_S)
                    for task in finished:
                        actor, job, attempt = running.pop(task)
                        result = self._result(ray, task, job, attempt)
                        if result is None:  # the actor died: a fresh one takes the clip again
                            ray.kill(actor)
                            idle.append(actor_class.remote(stop_flag))
                            queue.appendleft((job, attempt + 1))
                            continue
                        idle.append(actor)
                        yield result
                if running:  # stopped: the clips in flight abort and discard their outputs
                    stop_flag.set.remote()
                    yield from _stopped(ray, running, idle)
        finally:
            for actor in [*idle, *(actor for actor, _, _ in running.values()), stop_flag]:
                ray.kill(actor)

    def _result(self, ray: ModuleType, task: Any, job: ClipJob, attempt: int) -> ClipResult | None:
        """A finished task's result; ``None`` when its actor died and a retry is left."""
        died = (
            ray.exceptions.RayActorError,
            ray.exceptions.WorkerCrashedError,
            ray.exceptions.OutOfMemoryError,
            ray.exceptions.NodeDiedError,
        )
        try:
            return replace(ray.get(task), clip=job.clip, attempts=attempt)
        except died as error:
            if attempt <= self.retries:
                return None
            reason = f"its worker died ({attempt} attempts): {_first_line(error)}"
            return ClipResult(job.clip, "failed", reason=reason, attempts=attempt)
        except ray.exceptions.RayTaskError as error:  # a bug in a stage, not the clip's fault
            reason = _first_line(error.cause or error)
            return ClipResult(job.clip, "failed", reason=reason, attempts=attempt)


def _stopped(
    ray: ModuleType, running: dict[Any, tuple[Any, ClipJob, int]], idle: list[Any]
) -> Iterator[ClipResult]:
    """The results of the clips in flight when the run was stopped: what they returned
    within ``STOP_GRACE_S`` (their actors join ``idle``), ``interrupted`` for the others."""
    ended, _ = ray.wait(list(running), num_returns=len(running), timeout=STOP_GRACE_S)
    for task in ended:
        actor, job, attempt = running.pop(task)
        idle.append(actor)
        try:
            yield replace(ray.get(task), clip=job.clip, attempts=attempt)
        except ray.exceptions.RayError:
            yield ClipResult(job.clip, "interrupted", reason="stopped", attempts=attempt)
    for _, job, attempt in running.values():
        yield ClipResult(job.clip, "interrupted", reason="stopped", attempts=attempt)


def _first_line(error: BaseException) -> str:
    """``Type: first line of the message``."""
    text = str(error).strip()
    name = type(error).__name__
    return f"{name}: {text.splitlines()[0]}" if text else name
