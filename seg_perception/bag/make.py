"""``seg_bag make``: a rosbag2 camera stream from an image folder, with optional ground truth.

Frames are sorted by file name and stamped ``start + i / rate``. Topics (for the default
``--topic /camera/image``):

    /camera/image            sensor_msgs/Image rgb8 (or bgr8), or with --compressed
    /camera/image/compressed sensor_msgs/CompressedImage (png or jpeg)
    /camera/camera_info      sensor_msgs/CameraInfo (size; K from --calib, else K = 0)
    /camera/road_gt          sensor_msgs/Image mono8 ground truth with --labels:
                             1 road, 0 not road, 255 ignore; same header as the image

Ground truth is converted by the dataset code's rules, so bag replay scores exactly what
``seg_evaluate`` scores (``--label-format``):

* ``kitti``: ``gt_image_2`` colour images (:func:`image_io.kitti_gt_to_target`);
* ``camvid``: CamVid class-id PNGs (:func:`image_io.camvid_to_target`);
* ``folder``: masks of the same stem, mapped by a ``classes.yaml`` (``--mapping``, default
  ``<labels>/../classes.yaml``; :meth:`folder_mapping.ClassMapping.convert`);
* ``cityscapes``: ``<x>_gtFine_labelIds.png`` of ``<x>_leftImg8bit.png``
  (:func:`cityscapes_fine.label_ids_to_target`);
* ``bdd100k``: drivable-area masks, same stem (:func:`bdd100k.drivable_to_target`,
  ``--alternative road|ignore``);
* ``mapillary``: Mapillary Vistas palette label PNGs, same stem, read by the release's own
  ``config_<version>.json`` (:func:`mapillary.labels_to_target`,
  :func:`mapillary.find_config`).

Label values no rule covers (folder, cityscapes, bdd100k, mapillary) are ignored, counted
and logged as a warning summary; :func:`make_bag` returns the counts under ``'labels'``.
"""
from __future__ import annotations

import dataclasses
import logging
import pathlib
import shutil
import sys
import time
from typing import Any

import numpy as np

from seg_perception.bag import bagfile
from seg_perception.bag import topics as bag_topics
from seg_perception.core.choices import OVERLAY_ENCODINGS
from seg_perception.core.image_io import camvid_to_target, kitti_gt_to_target, read_gray, read_rgb
from seg_perception.datasets import bdd100k, cityscapes_fine, mapillary
from seg_perception.datasets.base import by_stem, list_images, require_dir
from seg_perception.datasets.camvid import IGNORE_CLASS, ROAD_CLASS
from seg_perception.datasets.folder import MAPPING_FILE
from seg_perception.datasets.folder_mapping import load_mapping
from seg_perception.datasets.labels import LabelReport, UnknownValues, read_mask

LOG = logging.getLogger(__name__)
LABEL_FORMATS = ('kitti', 'camvid', 'folder', 'cityscapes', 'bdd100k', 'mapillary')


@dataclasses.dataclass
class MakeOptions:
    """What ``seg_bag make`` writes.

    Attributes:
        rate: frames per second (stamps ``start_ns + i / rate``).
        topic: raw image topic; with ``compressed`` the data goes to ``<topic>/compressed``.
        gt_topic: ground-truth topic (default ``<namespace>/road_gt``).
        info_topic: camera_info topic (default ``<namespace>/camera_info``; '' = none).
        storage: ``'mcap'`` or ``'sqlite3'``.
        compressed: ``None`` (raw Image), ``'png'`` or ``'jpeg'``.
        encoding: raw image encoding, ``'rgb8'`` or ``'bgr8'``.
        frame_id: header frame id.
        start_ns: stamp of the first frame in ns (default: now).
        limit: at most this many frames.
        camera_matrix: (3, 3) K in pixels for a calibrated camera_info (e.g. from a KITTI
            calibration's P2), or ``None`` for an uncalibrated one (K = 0).
        mapping: ``folder`` labels: the classes.yaml (default ``<labels>/../classes.yaml``).
        alternative: ``bdd100k`` labels: alternative lanes ``'road'`` or ``'ignore'``.
    """

    rate: float = 10.0
    topic: str = '/camera/image'
    gt_topic: str | None = None
    info_topic: str | None = None
    storage: str = 'mcap'
    compressed: str | None = None
    encoding: str = 'rgb8'
    frame_id: str = 'camera'
    start_ns: int | None = None
    limit: int | None = None
    camera_matrix: Any = None
    mapping: str | None = None
    alternative: str = 'road'


def default_gt_topic(topic: str) -> str:
    """``/camera/image`` -> ``/camera/road_gt`` (sibling of the image topic)."""
    return f'{bag_topics.parent_namespace(topic)}/road_gt'


def default_info_topic(topic: str) -> str:
    """``/camera/image`` -> ``/camera/camera_info``."""
    return f'{bag_topics.parent_namespace(topic)}/camera_info'


def label_path(image: pathlib.Path, labels_dir: pathlib.Path, label_format: str,
               ) -> pathlib.Path:
    """Ground-truth file of ``image``: same stem (.png); KITTI ``{cat}_road_{idx}``; Cityscapes
    ``<x>_gtFine_labelIds.png``.
    """
    same = labels_dir / f'{image.stem}.png'
    if label_format == 'cityscapes':
        return cityscapes_fine.label_path(image, labels_dir)
    if label_format == 'kitti' and '_' in image.stem:
        cat, idx = image.stem.rsplit('_', 1)
        road = labels_dir / f'{cat}_road_{idx}.png'
        if road.is_file() or not same.is_file():
            return road
    return same


class LabelReader:
    """Label files of one ``--label-format`` -> targets, by the dataset modules' conversions.

    Args:
        label_format: one of :data:`LABEL_FORMATS`.
        labels_dir: the label folder.
        n_frames: frames to read (for the report).
        options: ``mapping`` / ``alternative`` (see :class:`MakeOptions`).
    """

    def __init__(self, label_format: str, labels_dir: pathlib.Path, n_frames: int,
                 options: MakeOptions) -> None:
        if label_format not in LABEL_FORMATS:
            raise bagfile.BagError(f'--label-format must be one of {LABEL_FORMATS} with '
                                   '--labels')
        self.format, self.dir = label_format, labels_dir
        self.mapping = None
        self.masks: dict[str, pathlib.Path] = {}
        if label_format == 'folder':
            self.mapping = load_mapping(options.mapping or labels_dir.parent / MAPPING_FILE)
            self.masks = by_stem(list_images(labels_dir), 'mask')
        if label_format == 'bdd100k':
            bdd100k.check_alternative(options.alternative)
        self.mapillary_names: tuple[str, ...] = ()
        if label_format == 'mapillary':
            self.mapillary_names = mapillary.read_label_names(mapillary.find_config(labels_dir))
        self.alternative = options.alternative
        self.report = LabelReport(f'{label_format} labels {labels_dir}', n_frames)

    def path(self, image: pathlib.Path) -> pathlib.Path:
        """The label file of ``image`` (it may not exist)."""
        if self.format == 'folder':
            return self.masks.get(image.stem, self.dir / f'{image.stem}.png')
        return label_path(image, self.dir, self.format)

    def read(self, path: pathlib.Path, name: str) -> np.ndarray:
        """(H, W) uint8 target (1 road, 0 not road, 255 ignore) from a label file."""
        if self.format in ('kitti', 'camvid'):
            return read_target(path, self.format)
        target, unknown = self._convert(path)
        self.report.add(name, target, unknown)
        return target

    def _convert(self, path: pathlib.Path) -> tuple[np.ndarray, UnknownValues]:
        """A mask-based label file -> (target, unknown values -> pixel count)."""
        if self.format == 'mapillary':
            return mapillary.labels_to_target(mapillary.read_labels(path), self.mapillary_names)
        mask = read_mask(path)
        if self.mapping is not None:
            return self.mapping.convert(mask, path)
        if mask.ndim != 2:
            raise bagfile.BagError(f'{path}: expected a single-channel {self.format} label '
                                   f'image, got {mask.shape}')
        if self.format == 'cityscapes':
            return cityscapes_fine.label_ids_to_target(mask)
        return bdd100k.drivable_to_target(mask, self.alternative)


def read_target(path: pathlib.Path, label_format: str) -> np.ndarray:
    """(H, W) uint8 target (1 road, 0 not road, 255 ignore) from a KITTI or CamVid label."""
    if label_format == 'kitti':
        return kitti_gt_to_target(read_rgb(path))
    labels = read_gray(path)
    if labels.max() > IGNORE_CLASS:
        raise bagfile.BagError(f'{path}: class id {int(labels.max())} outside '
                               f'0..{IGNORE_CLASS} (not a CamVid label image; use '
                               '--label-format kitti?)')
    return camvid_to_target(labels, ROAD_CLASS, IGNORE_CLASS)


def make_bag(images_dir: str | pathlib.Path, out: str | pathlib.Path,
             labels_dir: str | pathlib.Path | None = None, label_format: str | None = None,
             options: MakeOptions | None = None) -> dict[str, Any]:
    """Write the bag; on any error or Ctrl-C the unfinished bag folder is removed.

    Returns:
        ``{'path', 'frames', 'topics': {topic: count}, 'start_ns', 'end_ns'}``.

    Raises:
        BagError / DatasetError / ImageReadError: unusable inputs (one-line messages).
    """
    opt = options or MakeOptions()
    if opt.rate <= 0:
        raise bagfile.BagError(f'--rate must be > 0, got {opt.rate}')
    if opt.compressed not in (None, 'png', 'jpeg'):
        raise bagfile.BagError("compressed format must be 'png' or 'jpeg', got "
                               f'{opt.compressed!r}')
    if opt.encoding not in OVERLAY_ENCODINGS:  # the raw colour encodings the node publishes
        raise bagfile.BagError(f"encoding must be 'rgb8' or 'bgr8', got {opt.encoding!r}")
    if not opt.topic.startswith('/'):
        raise bagfile.BagError(f'--topic must be absolute (start with /), got {opt.topic!r}')
    images = list_images(require_dir(pathlib.Path(images_dir), 'image'))
    if opt.limit is not None:
        images = images[:max(0, int(opt.limit))]
    labels: list[pathlib.Path] | None = None
    reader: LabelReader | None = None
    if labels_dir is not None:
        reader = LabelReader(label_format or '', require_dir(pathlib.Path(labels_dir), 'label'),
                             len(images), opt)
        labels = [reader.path(p) for p in images]
        missing = [p for p in labels if not p.is_file()]
        if missing:
            raise bagfile.BagError(f'{missing[0]}: ground truth not found ({len(missing)} '
                                   f'of {len(images)} frame(s) have no label file)')
    image_topic = f'{opt.topic.rstrip("/")}/compressed' if opt.compressed else opt.topic
    gt_topic = opt.gt_topic or default_gt_topic(opt.topic)
    info_topic = default_info_topic(opt.topic) if opt.info_topic is None else opt.info_topic
    start = int(time.time() * 1e9) if opt.start_ns is None else int(opt.start_ns)
    period = 1e9 / opt.rate

    out = pathlib.Path(out)
    writer = bagfile.BagWriter(out, opt.storage)
    done = False
    try:
        writer.add_topic(image_topic, bagfile.COMPRESSED if opt.compressed else bagfile.IMAGE)
        if info_topic:
            writer.add_topic(info_topic, bagfile.CAMERA_INFO)
        if labels is not None:
            writer.add_topic(gt_topic, bagfile.IMAGE)
        from tqdm import tqdm
        t = start
        for i, path in enumerate(tqdm(images, desc='seg_bag make', unit='frame',
                                      file=sys.stderr, disable=not sys.stderr.isatty())):
            t = start + int(round(i * period))
            rgb = read_rgb(path)
            hdr = bagfile.header(t, opt.frame_id)
            if opt.compressed:
                msg = bagfile.compressed_msg(rgb, opt.compressed, hdr)
            else:
                msg = bagfile.image_msg(rgb if opt.encoding == 'rgb8' else rgb[:, :, ::-1],
                                        opt.encoding, hdr)
            writer.write(image_topic, t, msg)
            if info_topic:
                writer.write(info_topic, t,
                             bagfile.camera_info_msg(rgb.shape[1], rgb.shape[0], hdr,
                                                     opt.camera_matrix))
            if reader is not None:
                target = reader.read(labels[i], path.stem)
                if target.shape != rgb.shape[:2]:
                    raise bagfile.BagError(f'{labels[i]}: ground truth {target.shape[1]}x'
                                           f'{target.shape[0]} does not match image '
                                           f'{rgb.shape[1]}x{rgb.shape[0]} ({path.name})')
                writer.write(gt_topic, t, bagfile.image_msg(target, 'mono8', hdr))
        writer.close()
        done = True
        info = {'path': str(out), 'frames': len(images), 'topics': dict(writer.counts),
                'start_ns': start, 'end_ns': t}
        if reader is not None and label_format not in ('kitti', 'camvid'):
            info['labels'] = reader.report.as_dict()
        return info
    finally:
        if not done:
            try:
                writer.close()
            finally:
                shutil.rmtree(out, ignore_errors=True)
