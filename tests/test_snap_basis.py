"""Index tables of the bispectrum: counting identities and Clebsch–Gordan properties."""
import numpy as np
import pytest

from emtool import n_bispectrum
from emtool.kernels.snap_basis import _clebsch_gordan, snap_basis


@pytest.mark.parametrize("twojmax, d", [(2, 5), (4, 14), (6, 30), (8, 55)])
def test_component_count_matches_paper(twojmax, d):
    assert n_bispectrum(twojmax) == d == snap_basis(twojmax).idxb.shape[0]
    J = twojmax // 2
    assert d == (2 * J + 2) * (2 * J + 3) * (2 * J + 4) // 24


@pytest.mark.parametrize("twojmax", range(0, 15))
def test_tables_consistent(twojmax):
    basis = snap_basis(twojmax)
    assert basis.idxu_max == sum((j + 1) ** 2 for j in range(twojmax + 1))
    # every Z row points at the unique half of its layer
    for row in basis.idxz:
        j, jju = row[2], row[9]
        local = jju - basis.idxu_block[j]
        assert 2 * (local // (j + 1)) <= j
    # the half weights count each independent element of a layer once
    for j in range(twojmax + 1):
        s = basis.half_weight[basis.idxu_block[j]:basis.idxu_block[j] + (j + 1) ** 2].sum()
        assert s == pytest.approx((j + 1) ** 2 / 2)
    assert np.all(basis.idxb[:, 2] >= basis.idxb[:, 0])
    # each Z block runs over the compact half elements of its layer j, in order
    n_half = np.diff(np.append(basis.half_block, len(basis.half_index)))
    for j1 in range(twojmax + 1):
        for j2 in range(j1 + 1):
            for j in range(j1 - j2, min(twojmax, j1 + j2) + 1, 2):
                first, count = basis.idxz_block[j1, j2, j], basis.idxz_count[j1, j2, j]
                assert count == n_half[j]
                np.testing.assert_array_equal(
                    basis.idxz[first:first + count, 9],
                    basis.half_index[basis.half_block[j]:basis.half_block[j] + count])


def test_bispectrum_order_is_lammps_build_indexlist():
    basis = snap_basis(4)
    expected = [(j1, j2, j) for j1 in range(5) for j2 in range(j1 + 1)
                for j in range(j1 - j2, min(4, j1 + j2) + 1, 2) if j >= j1]
    assert [tuple(t) for t in basis.idxb] == expected


@pytest.mark.parametrize("j1, j2", [(1, 1), (2, 1), (3, 2), (4, 4), (6, 3)])
def test_clebsch_gordan_orthonormal(j1, j2):
    """sum_{m1,m2} C^{jm}_{j1m1j2m2} C^{j'm'}_{j1m1j2m2} = delta_jj' delta_mm' (VMK 8.1.1)."""
    js = range(abs(j1 - j2), j1 + j2 + 1, 2)
    rows = []
    for j in js:
        for m in range(j + 1):
            row = np.zeros((j1 + 1, j2 + 1))
            for m1 in range(j1 + 1):
                for m2 in range(j2 + 1):
                    if (2 * m1 - j1) + (2 * m2 - j2) == 2 * m - j:
                        row[m1, m2] = _clebsch_gordan(j1, j2, j, m1, m2)
            rows.append(row.ravel())
    rows = np.array(rows)
    assert rows.shape[0] == (j1 + 1) * (j2 + 1)
    np.testing.assert_allclose(rows @ rows.T, np.eye(len(rows)), atol=1e-13)


def test_known_clebsch_gordan_values():
    # <1/2 1/2, 1/2 -1/2 | 1 0> = 1/sqrt(2), <1/2 1/2, 1/2 -1/2 | 0 0> = 1/sqrt(2)
    assert _clebsch_gordan(1, 1, 2, 1, 0) == pytest.approx(np.sqrt(0.5))
    assert abs(_clebsch_gordan(1, 1, 0, 1, 0)) == pytest.approx(np.sqrt(0.5))
    # <1 1, 1 -1 | 2 0> = 1/sqrt(6)
    assert _clebsch_gordan(2, 2, 4, 2, 0) == pytest.approx(1 / np.sqrt(6))
