"""Files this package installs into ``share/seg_perception`` (models, config).

Found through the ament index when the package is installed (colcon, or ``make setup``'s
venv), else relative to this source tree.
"""
from __future__ import annotations

import pathlib

from seg_perception.core.formats import DEFAULT_MODEL_NAME, PACKAGE

SOURCE_ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_MODEL = SOURCE_ROOT / 'models' / DEFAULT_MODEL_NAME   # in the source tree


def share_file(relative: str) -> pathlib.Path:
    """``share/seg_perception/<relative>`` if installed there, else ``<source>/<relative>``."""
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory
        try:
            path = pathlib.Path(get_package_share_directory(PACKAGE)) / relative
            if path.exists():
                return path
        except PackageNotFoundError:
            pass
    except ImportError:  # ament_index_python comes with rclpy; absent in pure-core use
        pass
    return SOURCE_ROOT / relative
