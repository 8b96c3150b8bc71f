"""``seg_perception.testing.pytest_guard`` under this venv's pinned pytest, with launch plugins
present.

A ROS 2 install cannot be set up here, so stand-in ``launch_testing`` and ``launch_pytest``
distributions are written to a temporary folder on ``PYTHONPATH``: same distribution and
entry-point names (``pytest11``: ``launch_testing = launch_testing.pytest.hooks``,
``launch_pytest = launch_pytest.plugin``) and the two constructs the issue reports failing
under pytest 9 (a ``pytest_pycollect_makemodule(path, parent)`` hook implementation; reading
``<fixture>._pytestfixturefunction`` at collection). Each case runs pytest in a subprocess
on a throwaway project: without the guard the run errors as reported; with the guard (how
the venv's ``bin/activate`` runs pytest) it passes, and the launch test is skipped with one
reason; plugins that fit this pytest are not touched.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import textwrap

import pytest

INCOMPATIBLE = {
    'launch_testing/pytest/hooks.py': '''
        def pytest_pycollect_makemodule(path, parent):
            return None
        ''',
    'launch_pytest/plugin.py': '''
        import pytest

        @pytest.hookimpl(tryfirst=True)
        def pytest_pycollect_makeitem(collector, name, obj):
            marks = [m for m in getattr(obj, 'pytestmark', []) if m.name == 'launch']
            if marks:
                fixture = marks[0].kwargs['fixture']
                return [] if fixture._pytestfixturefunction.scope else None
            return None
        ''',
}
COMPATIBLE = {
    'launch_testing/pytest/hooks.py': '''
        def pytest_pycollect_makemodule(module_path, parent):
            return None
        ''',
    'launch_pytest/plugin.py': '''
        def pytest_report_header(config):
            return 'stand-in launch_pytest active'
        ''',
}
PROJECT_TEST = '''
import pytest


@pytest.fixture
def launch_description():
    return None


def test_plain():
    assert 1 + 1 == 2


@pytest.mark.launch(fixture=launch_description)
def test_launch():
    raise AssertionError('a launch test must not run without launch_pytest')
'''


def write_site(root: pathlib.Path, plugins: dict[str, str]) -> pathlib.Path:
    """Stand-in distributions with pytest11 entry points under ``root``."""
    for rel, source in plugins.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        for parent in path.relative_to(root).parents:
            if str(parent) != '.':
                (root / parent / '__init__.py').touch()
    for dist, entry in (('launch_testing', 'launch_testing.pytest.hooks'),
                        ('launch_pytest', 'launch_pytest.plugin')):
        info = root / f'{dist}-3.7.1.dist-info'
        info.mkdir()
        (info / 'METADATA').write_text(f'Metadata-Version: 2.1\nName: {dist}\nVersion: 3.7.1\n')
        (info / 'entry_points.txt').write_text(f'[pytest11]\n{dist} = {entry}\n')
    return root


def run_pytest(tmp_path: pathlib.Path, site: pathlib.Path, addopts: str
               ) -> subprocess.CompletedProcess[str]:
    """pytest in a subprocess on a throwaway project (nothing written outside tmp_path)."""
    project = tmp_path / 'project'
    project.mkdir(exist_ok=True)
    (project / 'test_sample.py').write_text(PROJECT_TEST)
    env = {k: v for k, v in os.environ.items() if k not in ('PYTEST_ADDOPTS', 'PYTHONPATH')}
    env.update(PYTHONPATH=str(site), PYTEST_ADDOPTS=addopts, PYTHONDONTWRITEBYTECODE='1')
    return subprocess.run(
        [sys.executable, '-m', 'pytest', '-rs', '-p', 'no:cacheprovider', '--rootdir',
         str(project), str(project)],
        cwd=project, env=env, capture_output=True, text=True, timeout=120)


def test_without_the_guard_the_upstream_plugins_error_the_run(tmp_path: pathlib.Path) -> None:
    site = write_site(tmp_path / 'site', INCOMPATIBLE)
    run = run_pytest(tmp_path, site, '')
    out = run.stdout + run.stderr
    assert run.returncode not in (0, 5), out
    assert 'pytest_pycollect_makemodule' in out and "'path'" in out, out
    # With launch_testing alone kept out, launch_pytest fails at collection instead.
    run = run_pytest(tmp_path, site, '-p no:launch_testing')
    out = run.stdout + run.stderr
    assert run.returncode not in (0, 5), out
    assert '_pytestfixturefunction' in out, out


def test_the_guard_skips_the_launch_tests_with_one_reason(tmp_path: pathlib.Path) -> None:
    site = write_site(tmp_path / 'site', INCOMPATIBLE)
    run = run_pytest(tmp_path, site, '-p seg_perception.testing.pytest_guard')
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert '1 passed, 1 skipped' in out, out
    skip_lines = [line for line in out.splitlines() if line.startswith('SKIPPED')]
    assert len(skip_lines) == 1, out
    reason = skip_lines[0]
    assert f'cannot load under pytest {pytest.__version__}' in reason, reason
    assert 'launch_testing: pytest_pycollect_makemodule()' in reason, reason
    assert 'launch_pytest: it reads fixture._pytestfixturefunction' in reason, reason
    assert 'pytest of the ROS 2 distribution' in reason, reason
    assert 'seg_perception.testing.pytest_guard: upstream launch test plugins' in out  # header


def test_the_guard_leaves_plugins_that_fit_this_pytest_alone(tmp_path: pathlib.Path) -> None:
    site = write_site(tmp_path / 'site', COMPATIBLE)
    run = run_pytest(tmp_path, site, '-p seg_perception.testing.pytest_guard')
    out = run.stdout + run.stderr
    assert 'stand-in launch_pytest active' in out, out  # loaded, not blocked
    assert 'seg_perception.testing.pytest_guard' not in out, out
    # The stand-in runs no launch tests, so the marked test runs (and fails) as a plain one.
    assert '1 failed, 1 passed' in out, out
