"""Selection of configurations (emtool.analysis.select, emtool select): the distance bookkeeping
against brute force, the greedy rules, determinism, the preference for novelty, bad input."""
import hashlib

import numpy as np
import pytest
from ase.build import bulk
from click.testing import CliRunner
from conftest import displaced_bcc, random_box

from emtool import ParameterError
from emtool.cli import main
from emtool.data.dataset import read_dataset, write_dataset
from emtool.kernels.select import nearest_within
from emtool.analysis.select import _lower, select_dataset, select_rows, standardize


def blocks(seed, sizes, d=6):
    """Random rows (M, d) and offsets of configurations of the given sizes."""
    rng = np.random.default_rng(seed)
    offsets = np.r_[0, np.cumsum(sizes)].astype(np.int64)
    return rng.normal(size=(offsets[-1], d)) * np.linspace(1, 3, d), offsets


def brute_sq(a, b):
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)


def test_lowered_distances_match_direct_differences():
    points, _ = blocks(0, [400])
    points = standardize(points)[0] + 50.0        # far from the origin: cancellation is worst
    new = points[::37] + 1e-4
    d2 = np.full(len(points), np.inf)
    _lower(d2, points, np.einsum("ij,ij->i", points, points), new)
    assert np.allclose(d2, brute_sq(points, new).min(axis=1), rtol=0, atol=1e-9)
    assert (d2 >= 0).all()


def test_nearest_within_is_the_leave_one_out_distance_inside_each_configuration():
    points, offsets = blocks(1, [5, 1, 7, 2])
    d2 = nearest_within(points, offsets)
    for a, b in zip(offsets[:-1], offsets[1:]):
        if b - a == 1:
            assert np.isinf(d2[a])
            continue
        full = brute_sq(points[a:b], points[a:b])
        np.fill_diagonal(full, np.inf)
        assert np.allclose(d2[a:b], full.min(axis=1), rtol=1e-12)


def greedy_by_hand(points, offsets, n, method, existing=None, floor=1e-3):
    """The greedy rule of the module docstring, written out with brute-force distances."""
    z, *rest = standardize(points, *([] if existing is None else [existing]))
    nconf = len(offsets) - 1
    held = rest[0] if existing is not None else np.zeros((0, z.shape[1]))
    picks = []
    for _ in range(n):
        scores = np.full(nconf, -np.inf)
        for c in range(nconf):
            if c in picks:
                continue
            rows = z[offsets[c]:offsets[c + 1]]
            d_held = np.sqrt(brute_sq(rows, held).min(axis=1)) if len(held) else np.full(len(rows), np.inf)
            inner = brute_sq(rows, rows)
            np.fill_diagonal(inner, np.inf)
            delta = np.minimum(d_held, np.sqrt(inner.min(axis=1)))
            values = delta if method == "farthest" else np.log(np.maximum(delta, floor))
            scores[c] = values.mean()
        best = int(np.argmax(scores))
        picks.append(best)
        held = np.vstack([held, z[offsets[best]:offsets[best + 1]]])
    return picks


def coverage_by_hand(points, offsets, n, existing=None):
    """The facility-location rule with every environment in the sample, brute force."""
    z, *rest = standardize(points, *([] if existing is None else [existing]))
    nconf = len(offsets) - 1
    table = np.array([np.sqrt(brute_sq(z, z[offsets[c]:offsets[c + 1]]).min(axis=1))
                      for c in range(nconf)])
    reach = (np.sqrt(brute_sq(z, rest[0]).min(axis=1)) if existing is not None
             else np.full(len(z), 2 * table.max() + 1))
    picks = []
    for _ in range(n):
        gains = [-np.inf if c in picks else np.maximum(reach - table[c], 0).sum()
                 for c in range(nconf)]
        picks.append(int(np.argmax(gains)))
        reach = np.minimum(reach, table[picks[-1]])
    return picks, reach


@pytest.mark.parametrize("with_existing", [False, True])
def test_coverage_picks_follow_the_facility_location_rule(with_existing):
    points, offsets = blocks(6, [6, 4, 8, 5, 7, 3, 6, 5, 4, 6])
    existing = blocks(7, [9])[0] * 0.5 if with_existing else None
    selection = select_rows(points, offsets, 6, "coverage", existing)
    picks, reach = coverage_by_hand(points, offsets, 6, existing)
    assert selection.positions.tolist() == picks
    assert np.allclose(selection.distances, reach, atol=1e-6)
    assert len(selection.sample) == len(points)              # small pool: every environment
    assert np.all(np.diff(selection.scores[1:]) <= 1e-9)      # gains never rise
    if not with_existing:                                     # first pick: the medoid
        z = standardize(points)[0]
        total = [np.sqrt(brute_sq(z, z[a:b]).min(axis=1)).sum()
                 for a, b in zip(offsets[:-1], offsets[1:])]
        assert picks[0] == int(np.argmin(total))


def test_coverage_sample_is_seeded_and_bounded():
    points, offsets = blocks(8, [10] * 30)
    a = select_rows(points, offsets, 4, "coverage", seed=1, sample=50)
    b = select_rows(points, offsets, 4, "coverage", seed=1, sample=50)
    assert a.positions.tolist() == b.positions.tolist() and len(a.sample) == 50
    assert a.sample.tolist() == sorted(set(a.sample.tolist()))


@pytest.mark.parametrize("method", ["farthest", "entropy"])
@pytest.mark.parametrize("with_existing", [False, True])
def test_greedy_picks_follow_the_documented_rule(method, with_existing):
    points, offsets = blocks(2, [6, 4, 8, 5, 7, 3, 6, 5])
    existing = blocks(3, [9])[0] * 0.5 if with_existing else None
    selection = select_rows(points, offsets, 5, method, existing)
    assert selection.positions.tolist() == greedy_by_hand(points, offsets, 5, method, existing)
    assert np.all(np.diff(selection.scores) <= 1e-12)     # farthest first: scores never rise


def test_random_is_a_seeded_permutation_and_records_the_final_distances():
    points, offsets = blocks(4, [5] * 20)
    a = select_rows(points, offsets, 6, "random", seed=3)
    assert a.positions.tolist() == np.random.default_rng(3).permutation(20)[:6].tolist()
    assert select_rows(points, offsets, 6, "random", seed=4).positions.tolist() != a.positions.tolist()
    z = standardize(points)[0]
    chosen = np.vstack([z[offsets[c]:offsets[c + 1]] for c in a.positions])
    assert np.allclose(a.distances ** 2, brute_sq(z[a.sample], chosen).min(axis=1), rtol=0,
                       atol=1e-9)


def test_bad_arguments_are_parameter_errors():
    points, offsets = blocks(5, [4, 4, 4])
    for kwargs, text in ((dict(n=4), "from a pool of 3"), (dict(n=0), "from a pool of 3"),
                         (dict(n=1, method="kmeans"), "unknown selection method")):
        with pytest.raises(ParameterError, match=text):
            select_rows(points, offsets, **kwargs)
    with pytest.raises(ParameterError, match="constant"):
        select_rows(np.ones((12, 3)), offsets, 1)


@pytest.fixture(scope="module")
def pool_files(tmp_path_factory):
    """A pool of six varied W configurations and one near-copy of an existing set."""
    folder = tmp_path_factory.mktemp("select")
    held = displaced_bcc(0, amplitude=0.05)
    near_copy = held.copy()
    near_copy.positions += np.random.default_rng(1).normal(scale=0.01, size=held.positions.shape)
    fcc = bulk("W", "fcc", a=4.0, cubic=True).repeat(2)
    fcc.positions += np.random.default_rng(2).normal(scale=0.05, size=fcc.positions.shape)
    pool = [near_copy, fcc] + [random_box(s, natoms=16, volume_per_atom=v)
                               for s, v in ((3, 15.9), (4, 18.0), (5, 22.0), (6, 26.0))]
    for k, atoms in enumerate(pool):
        atoms.info["index"] = 10 + k
    write_dataset(folder / "pool.h5", pool)
    write_dataset(folder / "held.h5", [held])
    return folder


@pytest.mark.parametrize("method", ["coverage", "farthest", "entropy"])
def test_a_configuration_unlike_the_existing_set_beats_a_near_copy_of_it(pool_files, tmp_path, method):
    out = tmp_path / "picked.h5"
    select_dataset(pool_files / "pool.h5", 5, out, method, [pool_files / "held.h5"])
    ranks = {a.info["source_index"]: a.info["selection_rank"] for a in read_dataset(out)}
    assert 10 not in ranks                  # the near-copy is the one left out of 5 of 6
    # without the existing set the near-copy is just another crystal, as good as the fcc one
    select_dataset(pool_files / "pool.h5", 6, out, method)
    assert len(read_dataset(out)) == 6


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_cli_writes_traceable_picks_and_is_deterministic(pool_files, tmp_path):
    runner = CliRunner()
    args = ["select", str(pool_files / "pool.h5"), "-n", "3", "--twojmax", "4"]
    first = runner.invoke(main, args + ["-o", str(tmp_path / "a.h5")])
    assert first.exit_code == 0, first.output
    assert "3 of 6 configurations" in first.output
    second = runner.invoke(main, args + ["-o", str(tmp_path / "b.h5")])
    assert second.exit_code == 0
    a, b = read_dataset(tmp_path / "a.h5"), read_dataset(tmp_path / "b.h5")
    assert [x.info for x in a] == [x.info for x in b]
    assert all(np.array_equal(x.positions, y.positions) for x, y in zip(a, b))
    assert sorted(x.info["selection_rank"] for x in a) == [0, 1, 2]
    pool = {x.info["index"]: x for x in read_dataset(pool_files / "pool.h5")}
    for atoms in a:
        assert atoms.info["source_index"] == atoms.info["index"]
        assert np.array_equal(atoms.positions, pool[atoms.info["index"]].positions)
        assert np.isfinite(atoms.info["selection_score"])


def test_cli_bad_input_is_one_line_and_writes_nothing(pool_files, tmp_path):
    runner = CliRunner()
    pool = str(pool_files / "pool.h5")
    existing = tmp_path / "exists.h5"
    existing.write_bytes(b"keep me")
    (tmp_path / "empty.h5").write_bytes(b"")
    write_dataset(tmp_path / "mo.h5", [bulk("Mo", "bcc", a=3.15, cubic=True).repeat(2)])
    cases = [
        (["-n", "7", "-o", str(tmp_path / "x.h5")], "holds 6"),
        (["-n", "2", "-o", str(existing)], "exists; pass --overwrite"),
        (["-n", "2", "-o", pool, "--overwrite"], "would replace the input"),
        (["-n", "2", "-o", str(tmp_path / "x.h5"), "--existing", str(tmp_path / "mo.h5")],
         "cannot be compared"),
        (["-n", "2", "-o", str(tmp_path / "x.h5"), "--workers", "0"], "--workers"),
    ]
    for extra, text in cases:
        result = runner.invoke(main, ["select", pool] + extra)
        assert result.exit_code == 2, (extra, result.output)
        assert text in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    bad_pool = runner.invoke(main, ["select", str(tmp_path / "empty.h5"), "-n", "1", "-o",
                                    str(tmp_path / "x.h5")])
    assert bad_pool.exit_code == 2 and "Traceback" not in bad_pool.output
    assert existing.read_bytes() == b"keep me"
    assert not (tmp_path / "x.h5").exists()


@pytest.mark.parametrize("seed", [0, 1])
def test_lazy_coverage_picks_what_recomputing_every_gain_picks(seed):
    """The lazy greedy of the coverage rule against the plain greedy (every gain recomputed
    at every pick, argmax), on a table with exact ties (repeated configurations)."""
    from emtool.analysis.select import greedy_coverage
    from emtool.kernels.select import coverage_gains
    rng = np.random.default_rng(seed)
    table = rng.uniform(0.0, 3.0, size=(120, 50))
    table[60:90] = table[10:40]                          # ties between positions
    reach = np.full(50, 4.0)
    picks, gains = greedy_coverage(table, reach.copy(), 80)
    plain_reach, plain = reach.copy(), []
    for _ in range(80):
        g = coverage_gains(plain_reach, table)
        g[plain] = -np.inf
        plain.append(int(np.argmax(g)))
        np.minimum(plain_reach, table[plain[-1]], out=plain_reach)
    assert picks.tolist() == plain
    assert np.all(np.diff(gains) <= 0)
