"""Drive ``seg_bag eval --bags``: plan the bags, run them (in this process with one worker,
else on Ray through :mod:`.fleet_ray`, which imports Ray only then), show progress, resume,
and write the fleet report (:mod:`.fleet_report`).
"""
from __future__ import annotations

import logging
import os
import pathlib
import sys
import time
from collections.abc import Sequence
from typing import Any

from seg_perception.bag.errors import BagError
from seg_perception.bag.fleet import (
    BagJob,
    failed,
    find_bags,
    plan_jobs,
    read_result,
    run_in_process,
)
from seg_perception.bag.fleet_ray import run_on_ray
from seg_perception.bag.fleet_report import write_fleet_report
from seg_perception.bag.replay import EvalOptions

LOG = logging.getLogger(__name__)


class FleetProgress:
    """One progress bar over bags and frames with an ETA (tqdm on a terminal), or a line
    every ``every_s`` seconds elsewhere (CI logs).
    """

    def __init__(self, bags: int, frames: int, bags_done: int = 0, every_s: float = 10.0,
                 stream: Any = None) -> None:
        self.stream = stream or sys.stderr
        self.bags, self.frames_total = bags, frames
        self.bags_done, self.frames_done = bags_done, 0
        self.every_s, self.t0, self.last = every_s, time.monotonic(), time.monotonic()
        self.bar = None
        if self.stream.isatty():
            from tqdm import tqdm
            self.bar = tqdm(total=frames, unit='frame', desc='fleet', file=self.stream)
            self._postfix()

    def _postfix(self) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(f'bags {self.bags_done}/{self.bags}')

    def frames(self, n: int) -> None:
        """``n`` more frames done."""
        if n <= 0:
            return
        self.frames_done += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.monotonic() - self.last >= self.every_s:
            self._line()

    def bag_done(self, result: dict[str, Any]) -> None:
        """One more bag finished (or failed)."""
        self.bags_done += 1
        self._postfix()
        if self.bar is None and result['status'] != 'ok':
            print(f'seg_bag fleet: {result["name"]}: {result["status"]}: {result["reason"]}',
                  file=self.stream, flush=True)

    def _line(self) -> None:
        self.last = time.monotonic()
        rate = self.frames_done / max(self.last - self.t0, 1e-9)
        left = max(self.frames_total - self.frames_done, 0)
        eta = f'{left / rate:.0f} s' if rate > 0 else '?'
        print(f'seg_bag fleet: {self.bags_done}/{self.bags} bags, {self.frames_done}/'
              f'{self.frames_total} frames, {rate:.1f} frames/s, ETA {eta}',
              file=self.stream, flush=True)

    def close(self) -> None:
        """Finish the bar (or print the last line)."""
        if self.bar is not None:
            self.bar.close()
        else:
            self._line()


def run_fleet(paths: Sequence[str | os.PathLike], out: str | os.PathLike, opt: EvalOptions,
              workers: int = 1, address: str | None = None, resume: bool = False,
              progress: FleetProgress | None = None) -> dict[str, Any]:
    """Evaluate every bag behind ``paths`` into ``out`` and write the fleet report.

    Args:
        paths: bags, folders of bags or list files (see :func:`find_bags`).
        out: the fleet's output folder (``bags/<name>/`` per bag, the report beside).
        opt: the ``seg_bag eval`` settings every bag is replayed with.
        workers: 1 = in this process, without Ray; more = a local Ray instance with that
            many workers (or the cluster's when ``address`` is given).
        address: a Ray cluster to join (``auto`` or ``ray://host:port``).
        resume: keep the bags whose folder holds a complete ``ok`` result.
        progress: the progress display (default: one on stderr).

    Returns:
        The fleet metrics.json content. Ctrl-C writes the report of the finished bags and
        raises KeyboardInterrupt again.

    Raises:
        BagError: no bag found behind ``paths``.
    """
    out = pathlib.Path(out)
    jobs = plan_jobs(find_bags(paths), out, opt)
    if not jobs:
        raise BagError(f'no bags found in {", ".join(map(str, paths))}')
    rows: dict[str, dict[str, Any]] = {}
    for job in jobs:
        kept = read_result(job) if resume else None
        if kept and kept['status'] == 'ok':
            rows[job.name] = kept
    todo = [j for j in jobs if j.name not in rows]
    if resume:
        LOG.info('resume: %d of %d bag(s) already done', len(rows), len(jobs))
    progress = progress or FleetProgress(len(jobs), sum(j.frames for j in todo), len(rows))

    def on_result(job: BagJob, result: dict[str, Any]) -> None:
        rows[job.name] = result
        progress.bag_done(result)
    interrupted = None
    try:
        if workers > 1 or address:
            run_on_ray(todo, opt, workers, address, progress.frames, on_result)
        else:
            run_in_process(todo, opt, progress.frames, on_result)
    except KeyboardInterrupt:
        interrupted = 'interrupted'
    finally:
        progress.close()
    final = [rows.get(j.name) or {**failed(j, 'interrupted'), 'status': 'interrupted'}
             for j in jobs]
    info = {'bags': [str(p) for p in paths], 'params_file': opt.params_file,
            'model': opt.model, 'workers': workers, 'ray_address': address,
            'engine': 'ray' if workers > 1 or address else 'in-process', 'resumed': len(jobs)
            - len(todo)}
    doc = write_fleet_report(out, final, info, interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return doc
