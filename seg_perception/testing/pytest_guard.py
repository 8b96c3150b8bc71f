"""pytest plugin: keep upstream launch test plugins that cannot load under this pytest out.

A ROS 2 install puts ``launch_testing`` and ``launch_pytest`` on the path, and both register
pytest plugins through ``pytest11`` entry points. The pytest that ROS 2 distributions ship
(7.x) loads them; a newer pytest (this venv pins 9.x) rejects them:

* a hook implementation with an argument the hook no longer has (launch_testing's
  ``pytest_pycollect_makemodule(path, parent)``: pytest 9 removed ``path``) aborts the
  whole run at plugin registration;
* launch_pytest reads ``<fixture>._pytestfixturefunction``, which fixtures no longer carry
  since pytest 8.4 (``FixtureFunctionDefinition``), and fails at collection.

Loaded early with ``-p seg_perception.testing.pytest_guard`` (the venv's ``bin/activate``
adds it to ``PYTEST_ADDOPTS``), this plugin checks each such entry point *before* pytest
loads entry points, blocks the incompatible ones, and skips the tests marked ``launch``
with one reason. Compatible plugins (e.g. under a distribution's pytest) are left alone, so
the launch tests run there as usual.
"""
from __future__ import annotations

import importlib.metadata
import inspect
from typing import Any

import pytest

# Entry-point modules checked: the launch test plugins of ros2/launch and ros2/launch_ros.
CHECKED_PREFIXES = ('launch_testing', 'launch_pytest')
FIXTURE_ATTRIBUTE = '_pytestfixturefunction'


class _State:
    """Plugins blocked in this process: entry-point name -> why."""

    blocked: dict[str, str] = {}


def _required_args(func: Any) -> list[str]:
    """Argument names a hook implementation asks for (as pluggy reads them)."""
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
            and p.default is p.empty and p.name != 'self']


def incompatibility(module: Any, pluginmanager: Any) -> str | None:
    """Why ``module`` (a loaded pytest plugin) cannot work under this pytest, or ``None``.

    Checks its hook implementations against this pytest's hook specifications (as pluggy
    does at registration) and whether it reads the fixture attribute pytest >= 8.4 dropped.
    """
    for name, func in vars(module).items():
        if not name.startswith('pytest_') or not callable(func):
            continue
        caller = getattr(pluginmanager.hook, name, None)
        spec = getattr(caller, 'spec', None)
        if spec is None:
            continue  # a hook the plugin declares itself
        unknown = sorted(set(_required_args(func)) - set(spec.argnames))
        if unknown:
            return (f'{name}() takes {unknown}, which pytest {pytest.__version__} no longer '
                    'passes')
    try:
        source = inspect.getsource(module)
    except (OSError, TypeError):
        source = ''
    if FIXTURE_ATTRIBUTE in source and not hasattr(pytest.fixture(lambda: None),
                                                   FIXTURE_ATTRIBUTE):
        return (f'it reads fixture.{FIXTURE_ATTRIBUTE}, which pytest {pytest.__version__} '
                'fixtures no longer have')
    return None


def launch_entry_points() -> list[Any]:
    """The ``pytest11`` entry points of the launch test plugins on this path."""
    eps = importlib.metadata.entry_points(group='pytest11')
    return [ep for ep in eps if ep.value.split(':')[0].startswith(CHECKED_PREFIXES)]


def reason() -> str | None:
    """The one skip reason for launch tests, or ``None`` when nothing was blocked."""
    if not _State.blocked:
        return None
    details = '; '.join(f'{name}: {why}' for name, why in sorted(_State.blocked.items()))
    return (f'upstream launch test plugins cannot load under pytest {pytest.__version__} '
            f'({details}); run the launch tests with the pytest of the ROS 2 distribution '
            '(e.g. colcon test, or python3 -m pytest outside the venv)')


def pytest_addhooks(pluginmanager: Any) -> None:
    """Before pytest loads entry points: block the launch plugins that cannot load."""
    for ep in launch_entry_points():
        if ep.name in _State.blocked or pluginmanager.is_blocked(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:  # noqa: BLE001 - an unloadable plugin errors the run too
            why: str | None = f'import failed: {type(exc).__name__}: {exc}'
        else:
            why = incompatibility(module, pluginmanager)
        if why is not None:
            _State.blocked[ep.name] = why
            pluginmanager.set_blocked(ep.name)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``launch`` marker when launch_pytest (which declares it) is blocked."""
    if _State.blocked:
        config.addinivalue_line('markers', 'launch: launch_pytest test (skipped: plugin '
                                'blocked by seg_perception.testing.pytest_guard)')


def pytest_report_header(config: pytest.Config) -> str | None:
    """One header line naming what was kept out."""
    why = reason()
    return None if why is None else f'seg_perception.testing.pytest_guard: {why}'


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip tests marked ``launch`` when launch_pytest is not active in this run."""
    why = reason()
    if why is None or config.pluginmanager.has_plugin('launch_pytest'):
        return
    for item in items:
        if item.get_closest_marker('launch') is not None:
            item.add_marker(pytest.mark.skip(reason=why))
