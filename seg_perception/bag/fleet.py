"""``seg_bag eval --bags``: one model scored on every bag a fleet recorded.

Each bag is replayed exactly as ``seg_bag eval --bag`` replays it (the node's pipeline and
params file, frames streamed from the bag, never loaded whole) into ``OUT/bags/<name>/``,
which then holds what ``seg_bag eval`` writes plus ``fleet.json``: the bag's status, frames,
time and its metric counts (the KITTI devkit's per-threshold FN/FP counts, per topic). The
fleet report sums those counts, so the fleet MaxF equals the MaxF of one run over all frames.

This module finds the bags and evaluates one; :mod:`.fleet_run` drives a fleet (in this
process, or on Ray actors through :mod:`.fleet_ray`), :mod:`.fleet_report` writes the report.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import pathlib
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from seg_perception.bag import bagfile
from seg_perception.bag.errors import BagError
from seg_perception.bag.replay import (
    BagReplay,
    EvalOptions,
    eval_settings,
    pipeline_from_settings,
    select_topics,
)
from seg_perception.evaluation.run import safe_name

LOG = logging.getLogger(__name__)
BAG_SUFFIXES = ('.mcap', '.db3')
RESULT_NAME = 'fleet.json'  # written last, atomically: a bag folder with it is complete


@dataclasses.dataclass
class BagJob:
    """One bag of the fleet: display ``name``, ``path`` (``None`` = not found), its output
    folder and, when it cannot even be opened, why.
    """

    name: str
    path: pathlib.Path | None
    out: pathlib.Path
    problem: str | None = None
    frames: int = 0  # image messages in the bag (for the progress bar)


def find_bags(paths: Sequence[str | os.PathLike]) -> list[tuple[str, pathlib.Path | None]]:
    """The bags behind ``paths``: a bag (a rosbag2 folder or an .mcap/.db3 file), a folder
    holding bags (searched recursively), or a text file listing bags (one per line, relative
    to the list's folder). Returns ``(as given, path or None when missing)``, in order.
    """
    found: list[tuple[str, pathlib.Path | None]] = []
    for given in paths:
        p = pathlib.Path(given).expanduser()
        if _is_bag(p):
            found.append((str(given), p))
        elif p.is_dir():
            found += [(str(b), b) for b in _bags_under(p)]
        elif p.is_file() and p.suffix.lower() not in BAG_SUFFIXES:
            lines = [ln.strip() for ln in p.read_text().splitlines()]
            found += find_bags([str(p.parent / ln) for ln in lines
                                if ln and not ln.startswith('#')])
        else:
            found.append((str(given), None))
    return found


def _is_bag(p: pathlib.Path) -> bool:
    return (p.is_dir() and (p / 'metadata.yaml').is_file()) or (
        p.is_file() and p.suffix.lower() in BAG_SUFFIXES)


def _bags_under(folder: pathlib.Path) -> list[pathlib.Path]:
    out = []
    for root, dirs, files in os.walk(folder):
        r = pathlib.Path(root)
        if 'metadata.yaml' in files:
            out.append(r)
            dirs[:] = []  # the storage files inside belong to this bag
            continue
        dirs.sort()
        out += [r / f for f in sorted(files) if pathlib.Path(f).suffix.lower() in BAG_SUFFIXES]
    return sorted(out)


def plan_jobs(found: Iterable[tuple[str, pathlib.Path | None]], out: pathlib.Path,
              opt: EvalOptions) -> list[BagJob]:
    """One job per bag with a unique folder name under ``out/bags``; counts the frames of the
    image topics ``opt`` selects.
    """
    jobs, used = [], set()
    for given, path in found:
        base = safe_name((path.stem if path and path.is_file() else (path or pathlib.Path(
            given)).name) or given)
        name, k = base, 1
        while name in used:
            k += 1
            name = f'{base}_{k}'
        used.add(name)
        job = BagJob(name, path, out / 'bags' / name)
        if path is None:
            job.problem = f'{given}: no such bag'
        else:
            try:
                with bagfile.BagReader(path) as bag:
                    topics, _ = select_topics(bag, opt.topics, opt.gt_topics)
                    job.frames = sum(bag.topics[t].count for t in topics)
            except BagError as exc:
                job.problem = str(exc)
        jobs.append(job)
    return jobs


def read_result(job: BagJob) -> dict[str, Any] | None:
    """The stored result of a completed bag (``None`` when absent or unreadable)."""
    try:
        doc = json.loads((job.out / RESULT_NAME).read_text())
    except (OSError, ValueError):
        return None
    return doc if doc.get('bag') == str(job.path) else None


def write_result(job: BagJob, result: dict[str, Any]) -> None:
    """Store a bag's result atomically (a crash leaves no half-written ``fleet.json``)."""
    job.out.mkdir(parents=True, exist_ok=True)
    tmp = job.out / f'.{RESULT_NAME}.tmp'
    tmp.write_text(json.dumps(result, indent=2) + '\n')
    tmp.replace(job.out / RESULT_NAME)


def failed(job: BagJob, reason: str, attempts: int = 0) -> dict[str, Any]:
    """The result row of a bag that produced no complete result."""
    return {'name': job.name, 'bag': str(job.path) if job.path else None,
            'status': 'missing' if job.path is None else 'failed', 'reason': reason,
            'frames': 0, 'seconds': 0.0, 'attempts': attempts}


def evaluate_bag(job: BagJob, opt: EvalOptions, pipeline: Any,
                 on_frames: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Replay one bag into its folder and return (and store) its result row.

    A bag that cannot be read, is cut off or holds a bad frame gives a ``failed`` row with
    the reason (its partial report stays in its folder); other errors propagate.
    """
    if job.problem:
        return failed(job, job.problem)
    t0 = time.perf_counter()
    try:
        with bagfile.BagReader(job.path) as bag:
            replay = BagReplay(bag, str(job.path), job.out, opt, pipeline, on_frames)
            doc = replay.run()
            counts = replay.run_.counts()
    except (BagError, ValueError, OSError) as exc:
        return failed(job, ' '.join(str(exc).split()))
    seconds = time.perf_counter() - t0
    result = {'name': job.name, 'bag': str(job.path), 'status': 'ok', 'reason': '',
              'frames': doc['frames'], 'seconds': round(seconds, 3),
              'fps': round(doc['frames'] / seconds, 3) if seconds > 0 else None,
              'MaxF': doc.get('MaxF'), 'IoU': doc.get('IoU'),
              'model_threshold': doc['run']['model_threshold'], 'counts': counts,
              'pid': os.getpid()}
    write_result(job, result)
    return result


def build_pipeline(opt: EvalOptions) -> Any:
    """The node's pipeline for ``opt`` (its params file and overrides), built once."""
    return pipeline_from_settings(eval_settings(opt))


def run_in_process(jobs: Sequence[BagJob], opt: EvalOptions,
                   on_frames: Callable[[int], None],
                   on_result: Callable[[BagJob, dict[str, Any]], None]) -> None:
    """Every job in this process, one after the other, with one pipeline."""
    pipeline = build_pipeline(opt) if any(not j.problem for j in jobs) else None
    for job in jobs:
        on_result(job, evaluate_bag(job, opt, pipeline, on_frames))
