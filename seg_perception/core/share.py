"""Files this package installs into ``share/seg_perception`` (models, config).

Found through the ament index when the package is installed (colcon, or ``make setup``'s
venv), else relative to this source tree.
"""
from __future__ import annotations

import os
import pathlib

PACKAGE = 'seg_perception'
SOURCE_ROOT = pathlib.Path(__file__).resolve().parent.parent
LARGE_IMAGES_PROFILE = 'config/fastdds_large_images.xml'
# The packaged default model (FCN-8s, HED/ImageNet VGG16, trained on KITTI + Cityscapes + CamVid).
DEFAULT_MODEL_NAME = 'road_fcn8s_vgg16.segmodel'
DEFAULT_MODEL = SOURCE_ROOT / 'models' / DEFAULT_MODEL_NAME   # in the source tree
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')


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


def use_large_image_profile() -> str | None:
    """Give this process the Fast DDS profile for large best-effort images.

    Sets ``FASTDDS_DEFAULT_PROFILES_FILE`` to the packaged profile (call before
    ``rclpy.init``) unless a profile file is already set or another RMW is selected.

    Returns:
        The profile path set, or ``None`` if nothing was changed.
    """
    if any(os.environ.get(v) for v in PROFILE_VARIABLES):
        return None
    if os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return None
    profile = share_file(LARGE_IMAGES_PROFILE)
    if not profile.is_file():
        return None
    os.environ['FASTDDS_DEFAULT_PROFILES_FILE'] = str(profile)
    return str(profile)


PUBLICATION_MODE_VARIABLE = 'RMW_FASTRTPS_PUBLICATION_MODE'


def use_async_publication() -> str | None:
    """Let Fast DDS send outgoing samples from its own thread (``ASYNCHRONOUS`` publication
    mode; call before ``rclpy.init``): ``publish`` then returns once the sample is
    serialised into the writer's history, and the worker thread does not wait for the
    shared-memory/UDP delivery of every label and overlay. Kept when the variable is
    already set, or another RMW is selected.

    Returns:
        The mode set, or ``None`` if nothing was changed.
    """
    if os.environ.get(PUBLICATION_MODE_VARIABLE):
        return None
    if os.environ.get('RMW_IMPLEMENTATION', 'rmw_fastrtps_cpp') != 'rmw_fastrtps_cpp':
        return None
    os.environ[PUBLICATION_MODE_VARIABLE] = 'ASYNCHRONOUS'
    return 'ASYNCHRONOUS'
