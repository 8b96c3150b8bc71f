"""Register this source tree in a venv the way ``colcon build --symlink-install`` would.

``pip install -e .`` puts the console scripts in ``<venv>/bin`` but installs no data files,
so this hook adds (idempotently):
  * the ament index marker ``share/ament_index/resource_index/packages/seg_perception``;
  * ``share/seg_perception/`` with the same files as setup.py's ``data_files``
    (``package.xml``, ``launch/*.launch.py``, ``config/*``, ``models/*``), each file a
    symlink to this tree inside real directories. Links are made file by file, as colcon's
    ``--symlink-install`` does, because ``ros2 launch <pkg> <file>`` finds launch files with
    ``os.walk`` over the share directory, which does not descend into directory symlinks.
    Links to files that are gone from the tree are removed, and the directory links of
    older versions of this hook are replaced;
  * ``lib/seg_perception/<executable>`` links to the console scripts (for ``ros2 run``);
  * to ``bin/activate`` (a marked block, replaced when it changes):
    AMENT_PREFIX_PATH with the venv prefix (so the ament index, ``ros2 pkg prefix`` where the
    ros2 CLI exists, and launch's FindPackageShare find the package),
    RMW_IMPLEMENTATION=rmw_fastrtps_cpp unless set, and ``-p seg_perception.testing.pytest_guard``
    in PYTEST_ADDOPTS (restored by ``deactivate``): the venv's pinned pytest then keeps
    upstream pytest plugins that cannot load under it (launch_testing, launch_pytest of a
    sourced ROS 2 install) out of the run instead of erroring; see
    ``seg_perception/testing/pytest_guard.py``.
"""
from __future__ import annotations

import os
import pathlib
import sys

PACKAGE = 'seg_perception'
EXECUTABLES = ('road_segmentation', 'seg_train', 'seg_evaluate', 'seg_bag')
# share/<PACKAGE>/<folder> <- files of the source tree; the same globs as setup.py data_files.
SHARED_FILES = (('', 'package.xml'), ('launch', 'launch/*.launch.py'), ('config', 'config/*'),
                ('models', 'models/*'))
MARK = '# >>> seg_perception ROS 2 environment >>>'
END_MARK = '# <<< seg_perception ROS 2 environment <<<'
BLOCK = f'''{MARK}
case ":${{AMENT_PREFIX_PATH:-}}:" in
  *":$VIRTUAL_ENV:"*) ;;
  *) export AMENT_PREFIX_PATH="$VIRTUAL_ENV${{AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}}" ;;
esac
export RMW_IMPLEMENTATION="${{RMW_IMPLEMENTATION:-rmw_fastrtps_cpp}}"
case " ${{PYTEST_ADDOPTS:-}} " in
  *" -p seg_perception.testing.pytest_guard "*) ;;
  *)
    _SEG_PERCEPTION_OLD_PYTEST_ADDOPTS="${{PYTEST_ADDOPTS-__unset__}}"
    export PYTEST_ADDOPTS="-p seg_perception.testing.pytest_guard${{PYTEST_ADDOPTS:+ \
$PYTEST_ADDOPTS}}"
    eval "_seg_perception_venv_$(declare -f deactivate)"
    deactivate () {{
        if [ "${{_SEG_PERCEPTION_OLD_PYTEST_ADDOPTS-}}" = "__unset__" ]; then
            unset PYTEST_ADDOPTS
        elif [ -n "${{_SEG_PERCEPTION_OLD_PYTEST_ADDOPTS+x}}" ]; then
            export PYTEST_ADDOPTS="$_SEG_PERCEPTION_OLD_PYTEST_ADDOPTS"
        fi
        unset _SEG_PERCEPTION_OLD_PYTEST_ADDOPTS
        _seg_perception_venv_deactivate "$@"
        if [ "${{1:-}}" != nondestructive ]; then unset -f _seg_perception_venv_deactivate; fi
    }}
    ;;
esac
{END_MARK}
'''


def shared_files(source: pathlib.Path) -> dict[pathlib.Path, pathlib.Path]:
    """``share/<PACKAGE>``-relative path -> source file, for every file setup.py installs."""
    files: dict[pathlib.Path, pathlib.Path] = {}
    for folder, pattern in SHARED_FILES:
        for path in sorted(source.glob(pattern)):
            if path.is_file():
                files[pathlib.Path(folder) / path.name] = path
    return files


def link(target: pathlib.Path, name: pathlib.Path) -> None:
    """Make ``name`` a symlink to ``target`` (replacing an older link or file)."""
    if name.is_symlink() or name.exists():
        if name.is_symlink() and os.readlink(name) == str(target):
            return
        if name.is_dir() and not name.is_symlink():
            raise RuntimeError(f'{name} is a directory; expected a file link to {target}')
        name.unlink()
    name.parent.mkdir(parents=True, exist_ok=True)
    name.symlink_to(target)


def install_share(source: pathlib.Path, share: pathlib.Path) -> None:
    """Mirror the data files into ``share`` file by file and prune links that are stale."""
    wanted = shared_files(source)
    share.mkdir(parents=True, exist_ok=True)
    for rel in {r.parent for r in wanted} - {pathlib.Path('.')}:
        folder = share / rel
        if folder.is_symlink():  # a directory link of the old layout: os.walk skips it
            folder.unlink()
        folder.mkdir(parents=True, exist_ok=True)
    for rel, target in wanted.items():
        link(target, share / rel)
    for root, dirs, files in os.walk(share):
        for name in files + [d for d in dirs if (pathlib.Path(root) / d).is_symlink()]:
            path = pathlib.Path(root) / name
            if path.is_symlink() and path.relative_to(share) not in wanted:
                path.unlink()


def activate_text(text: str) -> str:
    """``bin/activate`` with this package's block in place (added or replaced)."""
    start = text.find(MARK)
    if start >= 0:
        end = text.find(END_MARK, start)
        end = len(text) if end < 0 else end + len(END_MARK) + 1
        return text[:start] + BLOCK + text[end:]
    return text.rstrip('\n') + '\n\n' + BLOCK


def main(venv: str) -> int:
    """Install the ament layout and environment block into ``venv``."""
    prefix = pathlib.Path(venv).resolve()
    source = pathlib.Path(__file__).resolve().parent.parent
    marker = prefix / 'share' / 'ament_index' / 'resource_index' / 'packages' / PACKAGE
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.touch()
    install_share(source, prefix / 'share' / PACKAGE)
    for exe in EXECUTABLES:
        if (prefix / 'bin' / exe).exists():
            link(prefix / 'bin' / exe, prefix / 'lib' / PACKAGE / exe)
    activate = prefix / 'bin' / 'activate'
    if activate.is_file():
        text = activate.read_text()
        new = activate_text(text)
        if new != text:
            activate.write_text(new)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else '.venv'))
