"""Expert-style (DE-like) configuration groups: counts, determinism, structure, energies."""
import itertools
import logging

import numpy as np
import pytest
from ase.neighborlist import neighbor_list

import emtool
from emtool.generator.expert import (DEFAULT_COUNTS, EXPERT_GROUPS, ExpertSpec, INDEX_STRIDE,
                                     MIN_DISTANCE, PLANES, SITES, SLIP_PLANES, VACUUM, _oriented,
                                     expert_config, expert_groups)
from emtool.errors import ParameterError
from emtool.potentials.reference import FinnisSinclairW

SMALL = {group: 3 for group in EXPERT_GROUPS}
MATERIALS = {"bcc": dict(element="W", structure="bcc", a=3.1652),
             "fcc": dict(element="Cu", structure="fcc", a=3.615),
             "hcp": dict(element="Mg", structure="hcp", a=3.209, c=5.211)}


@pytest.fixture(scope="module")
def w_set():
    return expert_groups()


@pytest.fixture(scope="module")
def w_energies(w_set):
    potential = FinnisSinclairW()
    return np.array([potential.evaluate(atoms)["energy"] / len(atoms) for atoms in w_set])


def by_group(images, values=None):
    out = {}
    for k, atoms in enumerate(images):
        out.setdefault(atoms.info["group"], []).append(atoms if values is None else values[k])
    return out


def same(images_a, images_b):
    return len(images_a) == len(images_b) and all(
        np.array_equal(a.numbers, b.numbers) and np.array_equal(a.positions, b.positions)
        and np.array_equal(a.cell.array, b.cell.array) and a.info == b.info
        for a, b in zip(images_a, images_b))


def max_structure_factor(atoms, d_nn):
    """max of |sum_j exp(i q.r_j)|^2 / N^2 over the reciprocal vectors q of the periodic cell
    near the first peak, 2 pi / |q| within 0.8-1.2 of the close-packed plane spacing
    sqrt(2/3) d_nn (bcc 110, fcc 111, hcp 0002): 1 for a perfect crystal at its Bragg peak
    (less the Debye-Waller factor), of order 1/N for a liquid."""
    q_peak = 2 * np.pi / (np.sqrt(2 / 3) * d_nn)
    reciprocal = 2 * np.pi * np.linalg.inv(atoms.cell.array).T
    n = int(np.ceil(1.2 * q_peak / np.linalg.norm(reciprocal, axis=1).min()))
    hkl = np.array(list(itertools.product(range(-n, n + 1), repeat=3)))
    q = hkl @ reciprocal
    norm = np.linalg.norm(q, axis=1)
    q = q[(norm > 0.8 * q_peak) & (norm < 1.2 * q_peak)]
    rho = np.exp(1j * atoms.positions @ q.T).sum(axis=0)
    return float((np.abs(rho) ** 2).max()) / len(atoms) ** 2


def test_default_groups_and_counts(w_set):
    groups = by_group(w_set)
    assert list(groups) == list(EXPERT_GROUPS)
    assert {g: len(v) for g, v in groups.items()} == DEFAULT_COUNTS
    indices = [atoms.info["index"] for atoms in w_set]
    assert indices == sorted(set(indices))
    for code, (group, images) in enumerate(groups.items(), start=1):
        assert [a.info["index"] for a in images] == \
            [code * INDEX_STRIDE + k for k in range(DEFAULT_COUNTS[group])]
    sizes = [len(atoms) for atoms in w_set]
    assert 1 == min(sizes) and max(sizes) <= 128


def test_requested_counts_only():
    images = expert_groups(counts={"surface": 4, "vacancy": 2, "liquid": 0})
    assert [a.info["group"] for a in images] == ["vacancy"] * 2 + ["surface"] * 4


def test_deterministic_and_seeded():
    first = expert_groups(seed=5, counts=SMALL)
    assert same(first, expert_groups(seed=5, counts=SMALL))
    other = expert_groups(seed=6, counts=SMALL)
    assert all(not np.array_equal(a.positions, b.positions)
               or not np.array_equal(a.cell.array, b.cell.array) for a, b in zip(first, other))


def test_configuration_is_a_function_of_seed_group_and_k():
    few = expert_groups(seed=2, counts={g: 2 for g in EXPERT_GROUPS})
    more = expert_groups(seed=2, counts={g: 4 for g in EXPERT_GROUPS})
    for group in EXPERT_GROUPS:
        assert same(by_group(few)[group], by_group(more)[group][:2])
    spec = ExpertSpec(seed=2)
    for group in EXPERT_GROUPS:
        assert same([expert_config(spec, group, 3)], [by_group(more)[group][3]])


@pytest.mark.parametrize("structure", MATERIALS)
def test_structure_sanity(structure):
    material = MATERIALS[structure]
    spec = ExpertSpec(**material)
    images = expert_groups(**material, seed=1, counts={**SMALL, "liquid": 0})
    groups = by_group(images)
    for atoms in images:
        assert atoms.pbc.all() and 1 <= len(atoms) <= 128
        assert atoms.get_chemical_symbols() == [material["element"]] * len(atoms)
        d = neighbor_list("d", atoms, MIN_DISTANCE * spec.d_nn)
        assert len(d) == 0, (atoms.info, d.min() / spec.d_nn)
    bulk = spec.conventional()
    for atoms in groups["vacancy"]:
        assert (len(atoms) + 1) % len(bulk) == 0
    for atoms in groups["divacancy"]:
        assert (len(atoms) + 2) % len(bulk) == 0 and atoms.info["shell"] in (1, 2, 3)
    for atoms in groups["interstitial"]:
        assert (len(atoms) - 1) % len(bulk) == 0
    for atoms in groups["elastic"] + groups["displaced"]:
        assert len(atoms) % len(bulk) == 0
    for atoms in groups["surface"]:
        z = atoms.positions[:, 2]
        assert atoms.cell[2, 2] - (z.max() - z.min()) > VACUUM - 0.5
        assert not atoms.cell[:2, 2].any()


@pytest.mark.parametrize("structure", MATERIALS)
def test_oriented_cells_are_perfect_crystal(structure):
    """The slab and bicrystal cells before vacuum, shift and rattle: every atom has the
    crystal's first and second shells (the out-of-plane cell vector is a true lattice
    vector, which ase.build.surface(periodic=True) does not guarantee) at the crystal's
    volume per atom."""
    spec = ExpertSpec(**MATERIALS[structure])
    bulk = spec.conventional()
    shells = np.bincount(neighbor_list("i", bulk, 1.5 * spec.d_nn), minlength=len(bulk))
    for miller in set(PLANES[structure] + SLIP_PLANES[structure]):
        cell = _oriented(spec, miller)
        counts = np.bincount(neighbor_list("i", cell, 1.5 * spec.d_nn), minlength=len(cell))
        assert set(counts) == set(shells), miller
        assert cell.get_volume() / len(cell) == pytest.approx(bulk.get_volume() / len(bulk))
        assert cell.cell[2, 2] >= 4 * spec.d_nn and not cell.cell[:2, 2].any()


@pytest.mark.parametrize("structure, octahedral, tetrahedral",
                         [("bcc", 2, 4), ("fcc", 6, 4), ("hcp", 6, 4)])
def test_interstitial_sites(structure, octahedral, tetrahedral):
    """The site tables: atoms within 5% of the nearest distance (bcc octahedra are
    flattened: 2 at a/2, 4 at a/sqrt(2))."""
    spec = ExpertSpec(**MATERIALS[structure])
    crystal = spec.conventional().repeat(3)
    for site, expected in (("octahedral", octahedral), ("tetrahedral", tetrahedral)):
        x = (np.array(SITES[structure][site]) + 1) @ spec.conventional().cell.array
        r = np.linalg.norm(crystal.positions - x, axis=1)
        assert (r < 1.05 * r.min()).sum() == expected, site


def test_bcc_gamma_surface_grid():
    images = expert_groups(counts={"gamma_surface": 32})
    seen = {(a.info["plane"], tuple(a.info["shift"])) for a in images}
    assert len(seen) == 32
    assert {p for p, _ in seen} == {"110", "112"}
    assert any(a.info["gap"] > 0 for a in images)


def test_energies_plausible(w_set, w_energies):
    assert np.isfinite(w_energies).all()
    energy = by_group(w_set, w_energies)
    ground = -8.90  # E_c of the reference potential at a0 = 3.1652 Å
    for group, values in energy.items():
        assert min(values) > ground - 1e-3, group
        assert max(values) < -6.0, group
    for group in ("bulk_eos", "elastic", "displaced", "vacancy", "divacancy"):
        assert max(energy[group]) < -8.4, group
    assert min(energy["surface"]) > ground + 0.2
    assert max(energy["gamma_surface"]) > ground + 0.2  # faulted interfaces, not only bulk
    assert -8.3 < min(energy["liquid"]) and max(energy["liquid"]) < -7.0


def test_liquid_has_no_long_range_order(w_set):
    groups = by_group(w_set)
    d_nn = ExpertSpec().d_nn
    liquid = [max_structure_factor(a, d_nn) for a in groups["liquid"][::4]]
    crystal = [max_structure_factor(a, d_nn) for a in groups["displaced"][:4]
               + groups["vacancy"][:2]]
    assert max(liquid) < 0.25 and min(crystal) > 0.8
    steps = [a.info["md_step"] for a in groups["liquid"]]
    assert steps == sorted(set(steps)) and steps[0] >= 200
    assert groups["liquid"][0].info["temperature"] == pytest.approx(7390.0)


def test_other_element_liquid_with_its_calculator():
    from ase.calculators.emt import EMT
    kwargs = dict(MATERIALS["fcc"], counts={"liquid": 2})
    images = expert_groups(**kwargs, calculator=EMT(), liquid_temperature=2700.0)
    assert [len(a) for a in images] == [128, 128]
    assert max_structure_factor(images[1], ExpertSpec(**MATERIALS["fcc"]).d_nn) < 0.25
    assert images[0].calc is None


def test_other_element_without_calculator_skips_liquid(caplog):
    with caplog.at_level(logging.WARNING, logger="emtool.generator.expert"):
        images = expert_groups(**MATERIALS["fcc"])
    assert "liquid" not in {a.info["group"] for a in images}
    assert "no liquid group" in caplog.text


def test_write_dataset_round_trip(w_set, tmp_path):
    path = emtool.write_dataset(tmp_path / "expert.h5", w_set[::10])
    back = emtool.read_dataset(path)
    assert [a.info["index"] for a in back] == [a.info["index"] for a in w_set[::10]]
    assert [a.info["group"] for a in back] == [a.info["group"] for a in w_set[::10]]
    assert np.array_equal(back[-1].positions, w_set[::10][-1].positions)


@pytest.mark.parametrize("kwargs, message", [
    (dict(counts={"dislocation": 2}), "unknown group"),
    (dict(counts={"vacancy": -1}), "count of vacancy"),
    (dict(counts={"vacancy": 2.0}), "count of vacancy"),
    (dict(counts=[("vacancy", 2)]), "counts must be a dict"),
    (dict(structure="diamond", a=5.43), "unknown structure"),
    (dict(a=0.0), "lattice constant a"),
    (dict(a=-3.0), "lattice constant a"),
    (dict(a=float("nan")), "lattice constant a"),
    (dict(a=3.1652, c=5.0), "c is for hcp only"),
    (dict(structure="hcp", a=3.2), "hcp needs the lattice constant c"),
    (dict(element="Xx", structure="bcc", a=3.0), "unknown element"),
    (dict(element="Cu"), "give structure and a"),
    (dict(seed=-1), "seed"),
    (dict(element="Cu", structure="fcc", a=3.615, counts={"liquid": 1}), "needs an ASE calc"),
    (dict(element="Cu", structure="fcc", a=3.615, counts={"liquid": 1}, calculator=object()),
     "needs liquid_temperature"),
    (dict(liquid_temperature=-5.0), "liquid_temperature"),
])
def test_bad_input(kwargs, message):
    with pytest.raises(ParameterError, match=message):
        expert_groups(**kwargs)
