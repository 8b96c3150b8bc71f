"""Count the places each parameter choice list (and the ``crf.iterations`` range) is written.

A place is a tuple/list/set literal of strings, or the keys of a dict literal, whose set
of strings equals a choice list (``''`` ignored), in the package, the launch files and the
benches. Used for issue #13's before/after table::

    python tools/choice_lists.py
"""
from __future__ import annotations

import ast
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHOICES = {
    'backend': {'keras', 'onnxruntime'},
    'device': {'auto', 'cpu', 'gpu'},
    'precision': {'auto', 'float32', 'bfloat16', 'float16'},
    'input_mode': {'fit', 'pad', 'resize'},
    'overlay.encoding': {'rgb8', 'bgr8'},
    'transport': {'raw', 'compressed'},
    'reliability': {'best_effort', 'reliable'},
    'providers': {'tensorrt', 'cuda', 'cpu'},
}


def _strings(node: ast.AST) -> set[str] | None:
    elts = node.keys if isinstance(node, ast.Dict) else getattr(node, 'elts', None)
    if elts is None or not elts:
        return None
    if not all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in elts):
        return None
    return {e.value for e in elts} - {''}


def count(paths: list[pathlib.Path]) -> dict[str, list[str]]:
    """Places (``file:line``) per choice list, plus ``crf.iterations range``."""
    found: dict[str, list[str]] = {k: [] for k in [*CHOICES, 'crf.iterations range']}
    for path in paths:
        tree = ast.parse(path.read_text())
        rel = path.relative_to(ROOT)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)):
                s = _strings(node)
                for name, choices in CHOICES.items():
                    if s == choices:
                        found[name].append(f'{rel}:{node.lineno}')
                if (isinstance(node, (ast.Tuple, ast.List)) and len(node.elts) == 2
                        and all(isinstance(e, ast.Constant) for e in node.elts)
                        and [e.value for e in node.elts] == [1, 50]):
                    found['crf.iterations range'].append(f'{rel}:{node.lineno}')
            elif isinstance(node, ast.Compare):  # 1 <= x <= 50
                consts = [c.value for c in [node.left, *node.comparators]
                          if isinstance(c, ast.Constant)]
                if consts == [1, 50]:
                    found['crf.iterations range'].append(f'{rel}:{node.lineno}')
    return found


def main() -> int:
    paths = sorted(p for d in ('seg_perception', 'launch', 'bench')
                   for p in (ROOT / d).rglob('*.py'))
    for name, places in count(paths).items():
        print(f'{name}: {len(places)}  {" ".join(places)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
