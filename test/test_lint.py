"""Lint as ROS 2 Python packages do (flake8 + pep257 rules, via ruff) and check package.xml."""
from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest
from conftest import REPO

# package.xml format 3 (REP 149): allowed children of <package>, in schema order.
FORMAT3_ORDER = ['name', 'version', 'description', 'maintainer', 'license', 'url', 'author',
                 'build_depend', 'build_export_depend', 'buildtool_depend',
                 'buildtool_export_depend', 'exec_depend', 'depend', 'doc_depend',
                 'test_depend', 'conflict', 'replace', 'group_depend', 'member_of_group',
                 'export']
DEPENDS = {'build_depend', 'build_export_depend', 'buildtool_depend', 'buildtool_export_depend',
           'exec_depend', 'depend', 'doc_depend', 'test_depend'}


def test_ruff_clean() -> None:
    ruff = shutil.which('ruff')
    if ruff is None:
        pytest.skip('ruff is not installed in this environment (make setup installs it)')
    result = subprocess.run([ruff, 'check', '--output-format', 'concise', str(REPO)],
                            capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_package_xml_format3() -> None:
    root = ET.parse(REPO / 'package.xml').getroot()
    assert root.tag == 'package' and root.get('format') == '3'
    tags = [child.tag for child in root]
    unknown = [t for t in tags if t not in FORMAT3_ORDER]
    assert not unknown, f'elements not in format 3: {unknown}'
    order = [FORMAT3_ORDER.index(t) for t in tags]
    groups = [FORMAT3_ORDER.index(t) if t not in DEPENDS else FORMAT3_ORDER.index('build_depend')
              for t in tags]
    assert groups == sorted(groups), f'elements out of schema order: {tags}'
    assert order  # non-empty
    for required in ('name', 'version', 'description', 'maintainer', 'license'):
        assert root.find(required) is not None, f'missing <{required}>'
    assert root.findtext('name') == 'seg_perception'
    assert re.fullmatch(r'[a-z][a-z0-9_]*', root.findtext('name'))
    assert re.fullmatch(r'\d+\.\d+\.\d+', root.findtext('version'))
    for m in root.findall('maintainer'):
        assert re.fullmatch(r'[^@\s]+@[^@\s]+\.[^@\s]+', m.get('email', ''))
    assert root.findtext('export/build_type') == 'ament_python'
    deps = {d.tag: set() for d in root if d.tag in DEPENDS}
    for d in root:
        if d.tag in DEPENDS:
            assert re.fullmatch(r'[a-z0-9][a-z0-9_\-]*', d.text or ''), d.text
            deps[d.tag].add(d.text)
    assert {'rclpy', 'sensor_msgs', 'std_msgs', 'diagnostic_msgs', 'launch',
            'launch_ros'} <= deps['exec_depend']
    assert {'launch_pytest', 'python3-pytest'} <= deps['test_depend']


def test_setup_declares_executables_and_share_files() -> None:
    text = (REPO / 'setup.py').read_text()
    for exe in ('road_segmentation', 'seg_train', 'seg_evaluate', 'seg_bag'):
        assert f"'{exe} = seg_perception." in text
    for share in ("'launch/*.launch.py'", "'config/*'", "'models/*'", "'package.xml'",
                  "resource_index/packages"):
        assert share in text
    assert (REPO / 'resource' / 'seg_perception').is_file()
    cfg = (REPO / 'setup.cfg').read_text()
    assert 'script_dir=$base/lib/seg_perception' in cfg
    assert 'install_scripts=$base/lib/seg_perception' in cfg
