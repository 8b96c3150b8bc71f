"""Register this source tree in a venv the way ``colcon build --symlink-install`` would.

``pip install -e .`` puts the console scripts in ``<venv>/bin`` but installs no data files,
so this hook adds (idempotently):
  * the ament index marker ``share/ament_index/resource_index/packages/seg_perception``;
  * ``share/seg_perception/{package.xml,launch,config,models}`` as links to this tree;
  * ``lib/seg_perception/<executable>`` links to the console scripts (for ``ros2 run``);
  * to ``bin/activate``: AMENT_PREFIX_PATH with the venv prefix (so the ament index,
    ``ros2 pkg prefix`` where the ros2 CLI exists, and launch's FindPackageShare find the
    package) and RMW_IMPLEMENTATION=rmw_fastrtps_cpp unless set.
"""
import os
import pathlib
import sys

PACKAGE = 'seg_perception'
EXECUTABLES = ('road_segmentation', 'seg_train', 'seg_evaluate', 'seg_bag')
SHARED = ('package.xml', 'launch', 'config', 'models')
MARK = '# >>> seg_perception ROS 2 environment >>>'
BLOCK = f'''
{MARK}
case ":${{AMENT_PREFIX_PATH:-}}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}" ;;
esac
export RMW_IMPLEMENTATION="${{RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}}"
# <<< seg_perception ROS 2 environment <<<
'''


def link(target: pathlib.Path, name: pathlib.Path) -> None:
    """Make ``name`` a symlink to ``target`` (replacing an older link or file)."""
    name.parent.mkdir(parents=True, exist_ok=True)
    if name.is_symlink() or name.is_file():
        if name.is_symlink() and os.readlink(name) == str(target):
            return
        name.unlink()
    name.symlink_to(target)


def main(venv: str) -> int:
    """Install the ament layout and environment block into ``venv``."""
    prefix = pathlib.Path(venv).resolve()
    source = pathlib.Path(__file__).resolve().parent.parent
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    for entry in SHARED:
        link(source / entry, prefix / 'share' / PACKAGE / entry)
    for exe in EXECUTABLES:
        if (prefix / 'bin' / exe).exists():
            link(prefix / 'bin' / exe, prefix / 'lib' / PACKAGE / exe)
    activate = prefix / 'bin' / 'activate'
    text = activate.read_text()
    if MARK not in text:
        activate.write_text(text + BLOCK)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '.venv'))
