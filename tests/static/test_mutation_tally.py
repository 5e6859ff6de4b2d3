"""bench/mutation.py's table: only a failing test is a kill. A timeout or an error (a collection
error, pytest's internal error, a crash) is reported in its own column and never credited, and
the score is real kills over every mutant counted. Checked on a fake mutmut results dict."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("trainbot_bench_mutation_tally", ROOT / "bench" / "mutation.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(spec.name, None)
    return module


def _diff(name: str, source: str) -> tuple[str, str]:
    return (f"old {name}", f"new {name}")


# name -> (mutmut's exit code, source file), as bench/mutation.py reads mutants/*.meta
RESULTS = {
    "pkg.mod.x_f__mutmut_1": (1, "pkg/mod.py"),  # a test failed: killed
    "pkg.mod.x_f__mutmut_2": (1, "pkg/mod.py"),
    "pkg.mod.x_f__mutmut_3": (37, "pkg/mod.py"),  # the type checker: killed
    "pkg.mod.x_f__mutmut_4": (36, "pkg/mod.py"),  # timeout
    "pkg.mod.x_f__mutmut_5": (-24, "pkg/mod.py"),  # SIGXCPU: timeout
    "pkg.mod.x_f__mutmut_6": (2, "pkg/mod.py"),  # collection error (pytest: interrupted)
    "pkg.mod.x_f__mutmut_7": (3, "pkg/mod.py"),  # pytest internal error (mutmut says killed)
    "pkg.mod.x_f__mutmut_8": (-11, "pkg/mod.py"),  # segfault
    "pkg.mod.x_f__mutmut_9": (99, "pkg/mod.py"),  # a code nobody knows: suspicious
    "pkg.mod.x_f__mutmut_10": (0, "pkg/mod.py"),  # survived
    "pkg.mod.x_f__mutmut_11": (33, "pkg/mod.py"),  # no test reaches it
    "pkg.mod.x_f__mutmut_12": (None, "pkg/mod.py"),  # not checked: not counted
    "pkg.mod.x_f__mutmut_13": (34, "pkg/mod.py"),  # skipped: not counted
    "other.x_g__mutmut_1": (0, "other.py"),  # another group's
}


def test_each_outcome_has_its_own_column_and_only_failing_tests_are_kills(bench):
    t = bench.tally(["pkg.mod.*"], RESULTS, diff=_diff)
    assert dict(t.counts) == {"killed": 3, "timeout": 2, "error": 4, "survived": 1, "no tests": 1}
    assert t.total == 11
    assert t.killed == 3
    assert t.score() == pytest.approx(3 / 11)


def test_timeouts_and_errors_are_listed_apart_from_survivors(bench):
    t = bench.tally(["pkg.mod.*"], RESULTS, diff=_diff)
    assert [line.split(" ")[0] for line in t.uncredited] == [f"pkg.mod.x_f__mutmut_{n}" for n in (4, 5, 6, 7, 8, 9)]
    assert [line.split(" ")[0] for line in t.survivors] == ["pkg.mod.x_f__mutmut_10", "pkg.mod.x_f__mutmut_11"]
    assert t.survivors[0] == "pkg.mod.x_f__mutmut_10 [survived, exit 0]\n        - old pkg.mod.x_f__mutmut_10\n        + new pkg.mod.x_f__mutmut_10"


def test_an_equivalent_survivor_leaves_the_second_score_only(bench, monkeypatch):
    monkeypatch.setitem(bench.EQUIVALENT, ("pkg.mod.x_f", "old pkg.mod.x_f__mutmut_10", "new pkg.mod.x_f__mutmut_10"), "why")
    t = bench.tally(["pkg.mod.*"], RESULTS, diff=_diff)
    assert t.equivalent == [("pkg.mod.x_f__mutmut_10", "why")]
    assert [line.split(" ")[0] for line in t.survivors] == ["pkg.mod.x_f__mutmut_11"]
    assert t.score() == pytest.approx(3 / 11)
    assert t.score(without_equivalent=True) == pytest.approx(3 / 10)


def test_a_timeout_is_never_judged_equivalent(bench, monkeypatch):
    monkeypatch.setitem(bench.EQUIVALENT, ("pkg.mod.x_f", "old pkg.mod.x_f__mutmut_4", "new pkg.mod.x_f__mutmut_4"), "why")
    t = bench.tally(["pkg.mod.*"], RESULTS, diff=_diff)
    assert t.equivalent == []
    assert t.counts["timeout"] == 2


def test_a_group_with_nothing_counted_scores_full(bench):
    t = bench.tally(["nothing.*"], RESULTS, diff=_diff)
    assert t.total == 0 and t.score() == 1.0


# mutmut 3.8.1's mutmut.stats.status_by_exit_code (the pin in pyproject's mutate extra).
MUTMUT_STATUS_BY_EXIT_CODE = {
    1: "killed", 3: "killed", 0: "survived", 5: "no tests", 2: "check was interrupted by user", None: "not checked",
    33: "no tests", 34: "skipped", 35: "suspicious", 36: "timeout", 37: "caught by type check",
    -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout", -11: "segfault", -9: "segfault",
}


def test_every_mutmut_exit_code_maps_to_the_column_its_status_names(bench):
    expected = {
        "killed": "killed",
        "caught by type check": "killed",
        "survived": "survived",
        "no tests": "no tests",
        "timeout": "timeout",
        "check was interrupted by user": "error",
        "suspicious": "error",
        "segfault": "error",
    }
    for code, status in MUTMUT_STATUS_BY_EXIT_CODE.items():
        got = bench.outcome(code)
        if status in ("not checked", "skipped"):
            assert got is None, (code, status)
        elif code == 3:
            assert got == "error"  # pytest's internal error, not a failing test (mutmut says killed)
        elif code == 255:
            # mutmut 3.8.1's worker exits -1 when running the tests raised (mutmut says timeout;
            # its timeouts are SIGXCPU, -24): the mutant was never judged.
            assert got == "error"
        else:
            assert got == expected[status], (code, status)
    assert bench.outcome(4) == "error"  # any code mutmut does not know


def test_each_module_gets_its_own_columns_for_the_groups_mutants_only(bench):
    """The per-module table (the README's scores per file) keeps timeouts and errors apart too,
    and counts only the mutants of the groups asked for."""
    tallies = dict(bench.module_tallies(["g"], {"g": ["pkg.mod.*", "other.*"]}, RESULTS, diff=_diff))
    assert set(tallies) == {"pkg.mod", "other"}
    mod = tallies["pkg.mod"]
    assert dict(mod.counts) == {"killed": 3, "timeout": 2, "error": 4, "survived": 1, "no tests": 1}
    assert mod.score() == pytest.approx(3 / 11)
    assert dict(tallies["other"].counts) == {"survived": 1}
    narrow = dict(bench.module_tallies(["g"], {"g": ["pkg.mod.x_f__mutmut_1*"]}, RESULTS, diff=_diff))
    assert {m: t.total for m, t in narrow.items()} == {"pkg.mod": 3}  # 1, 10 and 11 (12 and 13 are not counted)


def test_a_rerun_names_only_the_unchecked_or_only_the_not_killed_mutants(bench):
    """--unchecked resumes a run; --not-killed, after tests were added, runs only what is left
    (timeouts and errors included: they were never judged)."""
    assert bench.narrowed(["pkg.mod.*"], RESULTS, "unchecked") == ["pkg.mod.x_f__mutmut_12"]
    assert bench.narrowed(["pkg.mod.*"], RESULTS, "not-killed") == [
        f"pkg.mod.x_f__mutmut_{n}" for n in (10, 11, 4, 5, 6, 7, 8, 9)
    ]
    assert bench.narrowed(["other.*"], RESULTS, "not-killed") == ["other.x_g__mutmut_1"]


def test_a_mutant_runs_only_its_groups_judges_less_the_ones_struck_out(monkeypatch):
    from types import SimpleNamespace

    from tests.conftest import pytest_collection_modifyitems

    ids = ["tests/unit/test_a.py::t", "tests/integration/test_store.py::small", "tests/integration/test_store.py::big", "tests/e2e/x.py::t"]
    items = [SimpleNamespace(nodeid=i) for i in ids]
    deselected: list[str] = []
    config = SimpleNamespace(hook=SimpleNamespace(pytest_deselected=lambda items: deselected.extend(i.nodeid for i in items)))
    monkeypatch.setenv("TRAINBOT_MUTATION_JUDGES", "tests/unit/ tests/integration/test_store.py -tests/integration/test_store.py::big")
    monkeypatch.setenv("MUTANT_UNDER_TEST", "backend.x.x_f__mutmut_1")
    pytest_collection_modifyitems(config, items)
    assert [i.nodeid for i in items] == ids[:2]
    assert deselected == ids[2:]
    monkeypatch.setenv("MUTANT_UNDER_TEST", "")  # not a mutant's run: every test stays
    again = [SimpleNamespace(nodeid=i) for i in ids]
    pytest_collection_modifyitems(config, again)
    assert len(again) == 4


def test_every_judge_is_in_the_tests_mutmut_selects(bench):
    """mutmut runs only the tests [tool.mutmut] selects: a judge outside them never judges."""
    import tomllib

    selection = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["mutmut"]["pytest_add_cli_args_test_selection"]
    selected = tuple(s for s in selection if not s.startswith("-"))
    judges = {j for group in bench.GROUPS for j in bench.JUDGES.get(group, bench.FAST_JUDGES) if not j.startswith("-")}
    assert judges and all(j.startswith(selected) for j in judges), sorted(j for j in judges if not j.startswith(selected))
