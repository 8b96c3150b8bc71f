"""The one reader of ROS 2 params YAML files, without rclpy.

:func:`load_params_file` reads the node's section the way rcl does for a node in any
namespace (``/**``, ``/**/road_segmentation``, ``/ns/road_segmentation``,
``road_segmentation``), so the offline tools and the launch files read the node's files
without rclpy; ``test/test_params.py`` compares it with the real rcl parser.
"""
from __future__ import annotations

import pathlib
import re
from typing import Any

import yaml

from seg_perception.core.formats import NODE_NAME
from seg_perception.core.params import ConfigError


def load_params_file(path: str | pathlib.Path, node: str = f'/{NODE_NAME}',
                     ) -> dict[str, Any]:
    """The parameters a ROS 2 params YAML gives node ``node`` (fully qualified name),
    flattened to dotted names (``crf: {scale: 0.5}`` -> ``crf.scale``).

    A key is the node's when it matches the fully qualified name, with ``*`` for one name
    segment and ``**`` for any number (``/**/road_segmentation``, ``/**``), as in rcl; a bare
    ``road_segmentation`` is the root-namespace node's; nested namespace keys
    (``ns: {road_segmentation: ...}``) join with ``/``. The ``/**`` section applies first,
    then the others in file order.

    Raises:
        ConfigError: the file is missing, not YAML, or holds no section for the node.
    """
    p = pathlib.Path(path)
    if not p.is_file():
        raise ConfigError(f'{p}: params file not found')
    try:
        doc = yaml.safe_load(p.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f'{p}: not valid YAML ({" ".join(str(exc).split())})') from None
    if not isinstance(doc, dict):
        raise ConfigError(f'{p}: not a ROS 2 params file (no node sections)')
    matching = [(key, section) for key, section in _sections(doc, '')
                if _node_matches(key, node)]
    if not matching:
        raise ConfigError(f'{p}: no ros__parameters for {node} (or /**)')
    params: dict[str, Any] = {}
    # Sections naming the node (even with wildcards) win over the bare '/**' section.
    for _, section in sorted(matching, key=lambda m: m[0].lstrip('/') != '**'):
        params.update(_flatten(section))
    return params


def _sections(doc: dict[str, Any], prefix: str) -> list[tuple[str, dict[str, Any]]]:
    """``(node key, ros__parameters)`` pairs in file order."""
    out = []
    for key, value in doc.items():
        if not isinstance(value, dict):
            continue
        name = f'{prefix}/{str(key).strip("/")}' if prefix else str(key)
        if isinstance(value.get('ros__parameters'), dict):
            out.append((name, value['ros__parameters']))
        else:
            out += _sections(value, name)
    return out


def _node_matches(key: str, fqn: str) -> bool:
    """Whether params-file key ``key`` names the node with fully qualified name ``fqn``."""
    if not key.startswith('/'):
        key = '/' + key  # a relative name: the root namespace (rcl)
    if key == '/**':
        return True
    # '**' matches any number of segments, '*' exactly one (rcl_yaml_param_parser).
    pattern = re.escape(key).replace(r'/\*\*', '(/[^/]+)*').replace(r'\*', '[^/]+')
    return re.fullmatch(pattern, fqn) is not None


def _flatten(d: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f'{prefix}{k}'
        if isinstance(v, dict):
            out.update(_flatten(v, key + '.'))
        else:
            out[key] = v
    return out
