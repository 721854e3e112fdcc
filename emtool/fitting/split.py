"""The one train/validation/test split of a fit's configurations (SNAP and networks).

Random: a seeded permutation of the n configurations gives validation its first
round(f_val n), test the next round(f_test n), training the rest. Group-wise (paper "DE split
by expert labels"): whole named groups are the test set, and the rest is split between
training and validation in the ratio f_train : f_val. SNAP fits hold out one part, the test
part of this split with fractions (1 - v, 0, v) (``emtool fit --validation v``, or
``--validation-groups``), and record it as their validation set; networks use all three
(``--split``, or ``--validation-groups`` as the test set).
"""
import numpy as np

from emtool.errors import ParameterError


def split_configurations(groups, fractions=(0.7, 0.1, 0.2), seed=0, test_groups=(), *,
                         draw_order=False, need_validation=True):
    """(train, validation, test) index arrays over configurations.

    groups : (n,) group name of each configuration; fractions : (train, validation, test),
    used as given (a random split) or as the ratio train : validation of the configurations
    outside ``test_groups`` (a group-wise split); seed : of the permutation.

    The parts are ascending, except with ``draw_order`` those of a random split, which keep
    the order of the seeded permutation (SNAP fits add their rows in this order). Raises
    ``ParameterError`` for test groups not in the data, when training would be empty, and,
    with ``need_validation`` (networks stop early on it), when validation would be empty.
    """
    groups = np.asarray(groups, dtype=str)
    n = len(groups)
    rng = np.random.default_rng(seed)
    if test_groups:
        unknown = set(test_groups) - set(groups.tolist())
        if unknown:
            raise ParameterError(f"groups not in the data: {', '.join(sorted(unknown))}")
        held = np.isin(groups, list(test_groups))
        test = np.flatnonzero(held)
        rest = rng.permutation(np.flatnonzero(~held))
        n_val = int(round(len(rest) * fractions[1] / (fractions[0] + fractions[1]))) \
            if fractions[1] else 0
        validation, train = np.sort(rest[:n_val]), np.sort(rest[n_val:])
    else:
        order = rng.permutation(n)
        n_val, n_test = int(round(fractions[1] * n)), int(round(fractions[2] * n))
        validation, test, train = order[:n_val], order[n_val:n_val + n_test], order[n_val + n_test:]
        if not draw_order:
            train, validation, test = np.sort(train), np.sort(validation), np.sort(test)
    required = [("training", train)] + ([("validation", validation)] if need_validation else [])
    for name, part in required:
        if len(part) == 0:
            raise ParameterError(f"the split leaves the {name} set empty ({n} configurations, "
                                 f"fractions {tuple(fractions)}, test groups {list(test_groups)})")
    return train, validation, test
