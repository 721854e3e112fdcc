"""Descriptor entropy of a set of atomic environments (paper Eq. 1; KL 1-NN estimator).

``descriptor_entropy(d, floor)`` = (1/N) sum_i ln(N sqrt(delta_i^2 + floor^2)) with delta_i the
distance from row i of d (N, m) to its nearest other row, found exactly by
``emtool.descriptors.nearest.nearest_sq_distances``: the generator's Numba kernel for small sets, a
KD-tree in few dimensions, screened matrix products for large sets in many dimensions
(whole datasets, millions of environments). All give the same value.
"""
from emtool.kernels.entropy import entropy_from_distances
from emtool.descriptors.nearest import nearest_sq_distances
from emtool.errors import ParameterError


def descriptor_entropy(d, floor=0.0, method="auto", workers=1):
    """S of the rows of d (N, m); floor >= 0 in the units of d (see the module docstring)."""
    if floor < 0:
        raise ParameterError(f"entropy floor must be >= 0, got {floor}")
    dist2 = nearest_sq_distances(d, None, method, workers)
    if floor == 0 and dist2.min() == 0:
        raise ParameterError("identical descriptor rows: the entropy needs a floor > 0")
    return float(entropy_from_distances(dist2, floor))
