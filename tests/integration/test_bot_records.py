"""The bot's small records under concurrency (moto, atomic per request as DynamoDB is):
presets and their index, and a sweep's thread root."""

from __future__ import annotations

import threading

from backend.services.presets import PresetBook, PresetNotYours

FIELDS = {"image": "123456789012.dkr.ecr.us-east-1.amazonaws.com/bert:latest"}


def run_together(*calls):
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)

    def run(i, call):
        barrier.wait()
        try:
            results[i] = call()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def test_two_people_saving_one_new_preset_at_once_do_not_both_become_its_creator(store):
    book = PresetBook(store, is_admin=lambda _u: False)
    results = run_together(lambda: book.save("nlp", FIELDS, "UALICE"), lambda: book.save("nlp", FIELDS, "UBOB"))
    creator = book.get("nlp").creator
    assert creator in {"UALICE", "UBOB"}
    loser = "UBOB" if creator == "UALICE" else "UALICE"
    outcome_of_loser = results[0] if loser == "UALICE" else results[1]
    # Told it is someone else's (the exact refusal, not any error), not silently taken over.
    assert type(outcome_of_loser) is PresetNotYours and outcome_of_loser.creator == creator
    assert book.names() == {"nlp": creator}


def test_presets_saved_at_the_same_moment_all_stay_in_the_index(store):
    book = PresetBook(store, is_admin=lambda _u: False)
    run_together(*[lambda n=n: book.save(f"p{n}", FIELDS, f"U{n}") for n in range(8)])
    assert book.names() == {f"p{n}": f"U{n}" for n in range(8)}
    book.delete("p3", "U3")
    assert "p3" not in book.names() and len(book.names()) == 7


def test_a_sweep_root_is_recorded_once_and_a_late_duplicate_takes_the_first(store):
    assert store.put_record("sweep-root", "sw-1", {"Ts": "1.1"}, only_if_absent=True)
    assert not store.put_record("sweep-root", "sw-1", {"Ts": "2.2"}, only_if_absent=True)
    assert store.get_record("sweep-root", "sw-1")["Ts"] == "1.1"
