"""Data fuzzing of every real-data loader (data_fuzz.py): each damaged fixture gives one
`error:` line naming the damaged file, or loads when the damage is harmless; never a traceback,
never a temporary or half-written cache entry, and no cache entry at all after an error.

The default suite runs a few seeded cases per loader and category; `-m slow` runs the long loop.
"""

import logging

import data_fuzz as df
import pytest


def check(names, n_per_category, tmp_path, first_seed=0):
    counts, failures = df.run_cases(names, n_per_category, tmp_path, first_seed)
    report = [
        f"{name} {o.case.category} ({o.case.what}): {o.kind}, cache {o.cache}: {o.message[:300]}"
        for name, o in failures
    ]
    assert not report, "\n".join(report)
    for name in names:  # every category was tried and the fuzzer's damage is mostly caught
        assert sum(counts[(name, c, k)] for c in df.CATEGORIES for k in ("error", "loaded")) == (
            4 * n_per_category
        )
        assert sum(counts[(name, c, "error")] for c in df.CATEGORIES) >= n_per_category
    return counts


@pytest.mark.parametrize("name", df.LOADERS)
def test_damaged_data_gives_one_line_naming_the_file(name, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    check([name], 3, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", df.LOADERS)
def test_damaged_data_fuzz_long(name, tmp_path, caplog):
    caplog.set_level(logging.ERROR)
    check([name], 100, tmp_path, first_seed=1000)


def test_the_fuzzer_catches_what_it_is_meant_to(tmp_path, monkeypatch):
    """A loader that lets an exception through, or an error that does not name the file,
    fails the contract (so the test above can go red)."""
    template = df.write_template("listops", tmp_path / "t")
    monkeypatch.setattr("tasks.files.read_text", lambda path: path.read_bytes().decode())
    outcomes = [
        df.run_case("listops", "corrupt", seed, template, tmp_path / "c") for seed in range(8)
    ]
    assert "traceback" in {o.kind for o in outcomes}
