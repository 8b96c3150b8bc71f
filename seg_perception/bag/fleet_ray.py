"""The Ray engine of ``seg_bag eval --bags``: bags evaluated on Ray actors.

``workers`` actors (one CPU each) each build the node's pipeline once and replay one bag at a
time, streaming its frames; the driver hands the next bag to whichever actor is free. A local
Ray instance is started with ``workers`` CPUs, or the job joins an existing cluster
(``address``: ``auto`` or ``ray://host:port``; bag paths, the model and the params file must
then be readable at the same paths on every node).

Faults: an actor that dies (killed, out of memory) is restarted by Ray and its bag retried
(``max_restarts`` / ``max_task_retries``); after that the bag is reported failed and a new
actor takes its place. Ctrl-C shuts Ray down (the workers stop) and keeps the finished bags.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from seg_perception.bag.fleet import BagJob, build_pipeline, evaluate_bag, failed
from seg_perception.bag.replay import EvalOptions

LOG = logging.getLogger(__name__)
RETRIES = 2          # Ray restarts of a dead actor, and retries of its bag
POLL_S = 0.5         # how often the driver collects progress and finished bags


class _Progress:
    """Frames done, added by the actors and taken by the driver (a Ray actor)."""

    def __init__(self) -> None:
        self.frames = 0

    def add(self, n: int) -> None:
        self.frames += n

    def take(self) -> int:
        n, self.frames = self.frames, 0
        return n


class _Evaluator:
    """One worker: the pipeline, built once, and the bags given to it (a Ray actor)."""

    def __init__(self, opt: EvalOptions, progress: Any) -> None:
        os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
        self.opt, self.progress = opt, progress
        self.pipeline = build_pipeline(opt)

    def evaluate(self, job: BagJob) -> dict[str, Any]:
        pending = [0]

        def on_frames(n: int) -> None:  # batched, so progress costs no per-frame round trip
            pending[0] += n
            if pending[0] >= 4:
                self.progress.add.remote(pending[0])
                pending[0] = 0
        result = evaluate_bag(job, self.opt, self.pipeline, on_frames)
        if pending[0]:
            self.progress.add.remote(pending[0])
        return result


def run_on_ray(jobs: Sequence[BagJob], opt: EvalOptions, workers: int, address: str | None,
               on_frames: Callable[[int], None],
               on_result: Callable[[BagJob, dict[str, Any]], None]) -> None:
    """Evaluate ``jobs`` on ``workers`` Ray actors; results arrive through ``on_result``."""
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    ray.init(address=address, num_cpus=None if address else workers,
             include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
             logging_level=logging.WARNING)
    try:
        progress = ray.remote(num_cpus=0)(_Progress).remote()
        evaluator = ray.remote(num_cpus=1, max_restarts=RETRIES,
                               max_task_retries=RETRIES)(_Evaluator)
        todo = [j for j in jobs if not j.problem]
        for job in jobs:
            if job.problem:
                on_result(job, failed(job, job.problem))
        idle = [evaluator.remote(opt, progress) for _ in range(min(workers, len(todo)))]
        running: dict[Any, tuple[BagJob, Any]] = {}
        while todo or running:
            while todo and idle:
                actor, job = idle.pop(), todo.pop(0)
                running[actor.evaluate.remote(job)] = (job, actor)
            done, _ = ray.wait(list(running), num_returns=1, timeout=POLL_S)
            on_frames(ray.get(progress.take.remote()))
            for ref in done:
                job, actor = running.pop(ref)
                try:
                    on_result(job, ray.get(ref))
                    idle.append(actor)
                except RayActorError as exc:  # died more often than Ray restarts it
                    on_result(job, failed(job, f'worker died ({_first_line(exc)}) after '
                                               f'{RETRIES} retries', attempts=RETRIES + 1))
                    idle.append(evaluator.remote(opt, progress))
                except RayTaskError as exc:  # an error the bag replay does not report
                    on_result(job, failed(job, _first_line(exc.cause or exc)))
                    idle.append(actor)
        on_frames(ray.get(progress.take.remote()))
    finally:
        ray.shutdown()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
