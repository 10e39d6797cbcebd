"""Checkpoints are verified, not trusted: another run's, edited, truncated or reshaped task
files are discarded and recomputed, so a resumed run equals an uninterrupted one bit for bit."""

import json
import shutil

import numpy as np
import pytest

from simseq.backend import Checkpoints, LocalBackend, _checksum, simulate_tasks
from simseq.bench import ref_hcc_model
from simseq.outcomes import sequence_os_tallies

N, SIZE, SEED = 20_000, 5_000, 3


@pytest.fixture(scope="module")
def model():
    return ref_hcc_model()


def run(model, checkpoints, seed=SEED):
    return simulate_tasks(
        LocalBackend(),
        model,
        N,
        seed,
        horizon=120.0,
        bin_width=0.1,
        task_patients=SIZE,
        checkpoints=checkpoints,
    )


def rewrite(path, edit, *, fresh_checksum: bool):
    """Change a checkpoint's arrays (and, to forge it well, its checksum)."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    meta = json.loads(str(arrays.pop("__meta__")))
    edit(arrays)
    if fresh_checksum:
        meta["checksum"] = _checksum(arrays)
    np.savez(path, **arrays, __meta__=np.array(json.dumps(meta)))


def doubled(arrays):
    arrays["hist"] = arrays["hist"] * 2
    arrays["exit_counts"] = arrays["exit_counts"] * 2


def reshaped(arrays):
    arrays["hist"] = arrays["hist"][..., :-1].copy()


def truncate(path):
    path.write_bytes(path.read_bytes()[:100])


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda p: rewrite(p, doubled, fresh_checksum=False), "does not match its checksum"),
        (lambda p: rewrite(p, doubled, fresh_checksum=True), "do not add up"),
        (lambda p: rewrite(p, reshaped, fresh_checksum=True), "has shape"),
        (truncate, "unreadable"),
    ],
    ids=["doubled", "doubled-with-forged-checksum", "wrong-shape", "truncated"],
)
def test_a_damaged_checkpoint_is_recomputed(model, tmp_path, damage, why):
    expected = run(model, None)
    checkpoints = Checkpoints("run", tmp_path)
    run(model, checkpoints)
    files = sorted(checkpoints.directory.glob("*.npz"))
    assert len(files) == N // SIZE
    damage(files[1])
    said = []
    again = Checkpoints("run", tmp_path, say=said.append)
    got = run(model, again)
    np.testing.assert_array_equal(got.hist, expected.hist)
    np.testing.assert_array_equal(got.exit_counts, expected.exit_counts)
    assert again.reused == N // SIZE - 1 and len(again.discarded) == 1
    assert why in again.discarded[0]
    assert (
        said[0] == f"resuming: {N // SIZE - 1} of {N // SIZE} tasks reused from {again.directory}"
    )
    assert "recomputing it" in said[1]


def test_checkpoints_of_another_run_or_task_are_not_used(model, tmp_path):
    expected = run(model, None)
    other = Checkpoints("other-seed", tmp_path)
    run(model, other, seed=SEED + 1)
    mine = Checkpoints("mine", tmp_path)
    mine.directory.mkdir(parents=True)
    for path in other.directory.glob("*.npz"):  # copied in under the right task names
        shutil.copy(path, mine.directory / path.name)
    got = run(model, mine)
    np.testing.assert_array_equal(got.hist, expected.hist)
    assert mine.reused == 0 and all("another run" in d for d in mine.discarded)
    # a task's file under another task's name
    first, second = sorted(mine.directory.glob("*.npz"))[:2]
    shutil.copy(first, second)
    again = Checkpoints("mine", tmp_path)
    np.testing.assert_array_equal(run(model, again).hist, expected.hist)
    assert again.reused == N // SIZE - 1 and "another run or task" in again.discarded[0]


def test_a_pickled_checkpoint_is_refused(model, tmp_path):
    checkpoints = Checkpoints("run", tmp_path)
    run(model, checkpoints)
    target = sorted(checkpoints.directory.glob("*.npz"))[0]
    np.savez(target, hist=np.array([object()], dtype=object), __meta__=np.array("{}"))
    again = Checkpoints("run", tmp_path)
    np.testing.assert_array_equal(run(model, again).hist, run(model, None).hist)
    assert "unreadable" in again.discarded[0]


@pytest.mark.parametrize(
    "tallies",
    [None, sequence_os_tallies(ref_hcc_model())],
    ids=["every-histogram", "sequence-os-only"],
)
def test_draw_task_checkpoints_with_doubled_histograms_are_caught(model, tmp_path, tallies):
    """Histograms doubled under a forged checksum, exit counts left as they were: the
    counts no longer add up (every kind of histogram is checked against the exits)."""
    draws = model.repeat_draws(4)
    kwargs = dict(horizon=120.0, bin_width=0.25, task_draws=2, tallies=tallies)
    expected = simulate_tasks(LocalBackend(), draws, 3_000, SEED, **kwargs)
    checkpoints = Checkpoints("psa", tmp_path)
    simulate_tasks(LocalBackend(), draws, 3_000, SEED, checkpoints=checkpoints, **kwargs)
    files = sorted(checkpoints.directory.glob("*.npz"))
    n_kept = expected.hist.shape[1]
    for j, path in enumerate(files):  # one kept histogram doubled per file

        def double(arrays, j=j):
            arrays["hist"][:, j % n_kept] *= 2

        rewrite(path, double, fresh_checksum=True)
    again = Checkpoints("psa", tmp_path)
    got = simulate_tasks(LocalBackend(), draws, 3_000, SEED, checkpoints=again, **kwargs)
    np.testing.assert_array_equal(got.hist, expected.hist)
    np.testing.assert_array_equal(got.exit_counts, expected.exit_counts)
    assert again.reused == 0 and len(again.discarded) == len(files) == 2
    assert all("do not add up" in d for d in again.discarded)
