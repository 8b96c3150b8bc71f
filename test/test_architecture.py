"""The import contract of the package's layers (docs/ARCHITECTURE.md), read from the source.

* Subpackages form layers, lowest first (:data:`LAYERS`); a module imports only from its own
  layer or lower ones.
* No import cycles between modules, function-level imports included.
* rclpy and the ROS message packages only under ``ros/``; TensorFlow/Keras, ONNX Runtime,
  onnx, Ray and matplotlib only in the modules listed in :data:`ALLOWED`.
* A function-level import of the package's own modules only where the target pulls in a heavy
  optional dependency (TensorFlow, rclpy, ...); every other import is at module level.
"""
from __future__ import annotations

import ast
import collections
import pathlib

import pytest

PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1] / 'seg_perception'
#: lowest first; the package's ``__init__`` counts as the lowest
LAYERS = ('core', 'geometry', 'datasets', 'model', 'runtime', 'export', 'evaluation',
          'training', 'bag', 'ros', 'cli', 'testing')
ROS = ('rclpy', 'rcl_interfaces', 'sensor_msgs', 'diagnostic_msgs', 'nav_msgs', 'geometry_msgs',
       'std_msgs', 'lifecycle_msgs', 'launch', 'launch_ros', 'tf2_ros')
#: heavy dependency -> the subpackages or modules that may import it
ALLOWED = {
    'tensorflow': ('model', 'runtime.segmenter', 'export', 'training'),
    'keras': ('model', 'runtime.segmenter', 'export', 'training'),
    'tf2onnx': ('export',),
    'onnx': ('export', 'core.backend_choice'),
    'onnxruntime': ('runtime.ort_session', 'export.int8'),
    'ray': ('bag.fleet_ray',),
    'matplotlib': ('evaluation.plots',),
}
HEAVY = set(ROS) | set(ALLOWED) | {'jax', 'torch', 'albumentations', 'pydensecrf', 'h5py',
                                   'tensorboard', 'tqdm', 'mcap'}


class Module:
    """One module's imports: package modules and external top-level names."""

    def __init__(self, name: str, path: pathlib.Path) -> None:
        self.name, self.path = name, path
        self.top: set[str] = set()          # package modules imported at module level
        self.local: list[tuple[int, set[str]]] = []  # (line, package modules) in functions
        self.external_top: set[str] = set()
        self.external_all: set[str] = set()


def _modules() -> dict[str, Module]:
    found = {}
    for p in sorted(PACKAGE_DIR.rglob('*.py')):
        parts = p.relative_to(PACKAGE_DIR.parent).with_suffix('').parts
        name = '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)
        found[name] = Module(name, p)
    for mod in found.values():
        _read(mod, found)
    return found


def _resolve(name: str, modules: dict[str, Module]) -> str | None:
    while name not in modules and '.' in name:
        name = name.rsplit('.', 1)[0]
    return name if name in modules else None


def _targets(node: ast.Import | ast.ImportFrom, mod: Module, modules: dict[str, Module],
             ) -> tuple[set[str], set[str]]:
    """(package modules, external top-level names) that ``node`` imports."""
    inner, outer = set(), set()
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ''
        if node.level:
            pkg = mod.name.split('.') if mod.path.name == '__init__.py' else \
                mod.name.split('.')[:-1]
            pkg = pkg[:len(pkg) - node.level + 1]
            base = '.'.join(pkg + ([node.module] if node.module else []))
        names = [base] + [f'{base}.{a.name}' for a in node.names]
    for n in names:
        if n.split('.')[0] == 'seg_perception':
            r = _resolve(n, modules)
            if r and r != mod.name:
                inner.add(r)
        else:
            outer.add(n.split('.')[0])
    return inner, outer


def _read(mod: Module, modules: dict[str, Module]) -> None:
    tree = ast.parse(mod.path.read_text())
    type_checking: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and 'TYPE_CHECKING' in ast.unparse(node.test):
            type_checking.update(id(n) for b in node.body for n in ast.walk(b))
    in_function: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            in_function.update(id(n) for n in ast.walk(node) if n is not node)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or id(node) in type_checking:
            continue
        inner, outer = _targets(node, mod, modules)
        mod.external_all |= outer
        if id(node) in in_function:
            if inner:
                mod.local.append((node.lineno, inner))
        else:
            mod.top |= inner
            mod.external_top |= outer


def _layer(name: str) -> int:
    parts = name.split('.')
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else -1


def _heavy(name: str, modules: dict[str, Module], seen: frozenset[str] = frozenset(),
           ) -> set[str]:
    """Heavy external packages that importing module ``name`` loads."""
    mod = modules[name]
    found = mod.external_top & HEAVY
    for dep in mod.top - seen - {name}:
        found |= _heavy(dep, modules, seen | {name})
    return found


MODULES = _modules()


def _edges(mod: Module) -> set[str]:
    return mod.top | set().union(*(t for _, t in mod.local)) if mod.local else set(mod.top)


def test_every_subpackage_has_a_layer() -> None:
    subpackages = {p.parent.name for p in PACKAGE_DIR.glob('*/__init__.py')}
    assert subpackages <= set(LAYERS), subpackages - set(LAYERS)
    flat = [p.name for p in PACKAGE_DIR.glob('*.py') if p.name != '__init__.py']
    assert flat == [], f'modules outside the layer folders: {flat}'


def test_lower_layers_never_import_higher_ones() -> None:
    bad = [f'{m.name} -> {d}' for m in MODULES.values() for d in sorted(_edges(m))
           if _layer(d) > _layer(m.name)]
    assert bad == []


def test_no_import_cycles() -> None:
    graph = {name: _edges(m) for name, m in MODULES.items()}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                cycles.append(sorted(scc))

    for v in graph:
        if v not in index:
            visit(v)
    assert cycles == []


@pytest.mark.parametrize('package', ROS)
def test_ros_packages_only_under_ros(package: str) -> None:
    users = sorted(m.name for m in MODULES.values() if package in m.external_all
                   and not m.name.startswith('seg_perception.ros'))
    assert users == []


@pytest.mark.parametrize('package', sorted(ALLOWED))
def test_heavy_dependencies_only_where_used(package: str) -> None:
    allowed = tuple(f'seg_perception.{a}' for a in ALLOWED[package])
    users = sorted(m.name for m in MODULES.values() if package in m.external_all
                   and not (m.name in allowed or m.name.startswith(tuple(a + '.' for a in
                                                                           allowed))))
    assert users == []


def test_function_level_package_imports_only_defer_heavy_dependencies() -> None:
    light = []
    for m in MODULES.values():
        for line, targets in m.local:
            if not set().union(*(_heavy(t, MODULES) for t in targets)):
                light.append(f'{m.path.relative_to(PACKAGE_DIR.parent)}:{line} '
                             f'{sorted(targets)}')
    assert light == []


def test_no_module_over_400_lines_and_the_node_under_300() -> None:
    sizes = {m.name: len(m.path.read_text().splitlines()) for m in MODULES.values()}
    assert {n: s for n, s in sizes.items() if s > 400} == {}
    assert sizes['seg_perception.ros.node'] <= 300


def test_contract_sees_the_package() -> None:
    # guards the test itself: it must find the layers and the known edges
    assert len(MODULES) > 40
    assert 'seg_perception.core.formats' in MODULES['seg_perception.core.backend_choice'].top
    counts = collections.Counter(_layer(n) for n in MODULES)
    assert all(counts[i] for i in range(len(LAYERS))), counts
