"""Issue 23: what a job's writes cost in write capacity, priced from item sizes and
template.yaml's projections (tests/write_cost.py; bench/scale.py prints the same figures)."""

from __future__ import annotations

from tests.write_cost import HAPPY_PATH_WCU_TARGET, happy_path_wcu


def test_a_happy_path_job_costs_at_most_its_target_in_wcu_over_the_table_and_its_indexes():
    total, by_index = happy_path_wcu()
    assert total <= HAPPY_PATH_WCU_TARGET, dict(by_index)


def test_the_owner_and_history_indexes_are_written_once_per_job_whatever_its_later_writes():
    _total, by_index = happy_path_wcu()
    # Their keys never change after registration and they project nothing else.
    assert by_index["Owner"] == by_index["ByDay"] == 1


def test_a_job_is_put_into_the_active_index_once_and_removed_once_however_it_changes_while_active():
    _total, by_index = happy_path_wcu()
    assert by_index["Active"] == 2  # Launched puts it, InProgress leaves it be, Completed deletes it


def test_the_queue_index_costs_a_small_entry_per_move_not_the_whole_item():
    _total, by_index = happy_path_wcu()
    assert by_index["Queue"] == 4  # registration: put; claim: delete and put; launch: delete
