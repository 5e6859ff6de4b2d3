"""`./dev mutate --spot` applies hand-written mutations of the core rules (bench/mutation.py).
Each names a piece of source text it replaces: when the source is edited and the text is gone,
the mutation silently stops testing anything, so the list is checked here against the source."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _spot_mutations() -> list[tuple[str, str, str, str]]:
    spec = importlib.util.spec_from_file_location("trainbot_bench_mutation", ROOT / "bench" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return list(module.SPOT_MUTATIONS)


def test_every_spot_mutation_changes_text_found_once_in_its_file():
    mutations = _spot_mutations()
    assert len(mutations) >= 10
    for path, original, mutated, what in mutations:
        source = (ROOT / path).read_text(encoding="utf-8")
        assert source.count(original) == 1, f"{what}: its original text is not found once in {path}"
        assert mutated != original, what
