"""The Fast DDS environment of this package's processes (set before ``rclpy.init``): the
profile for large best-effort images and asynchronous publication.
"""
from __future__ import annotations

import os

from seg_perception.core.share import share_file

LARGE_IMAGES_PROFILE = 'config/fastdds_large_images.xml'
PROFILE_VARIABLES = ('FASTDDS_DEFAULT_PROFILES_FILE', 'FASTRTPS_DEFAULT_PROFILES_FILE')
PUBLICATION_MODE_VARIABLE = 'RMW_FASTRTPS_PUBLICATION_MODE'


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
