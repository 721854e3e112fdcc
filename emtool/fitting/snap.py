"""Linear and quadratic SNAP by weighted least squares (paper Eq. 3).

Rows per configuration (N atoms, cell volume V), columns c = (1, B, [BB]) per atom:

- energy: (1/N) sum_i c_i  ->  (E - E_ref) / N                     weight w_e
- forces: -(d/dr_k) sum_i c_i  ->  F_k - F_ref,k (3N rows)           weight w_f
- stress: -(1/V) W_c (Voigt)  ->  sigma - sigma_ref (6 rows, ASE)    weight w_s

(W_c is the descriptor virial of ``BispectrumDerivatives.virial``.) ``E_ref`` etc. come from an
optional reference potential subtracted first (e.g. ZBL, as FitSNAP does). The system is
reduced chunk by chunk with a tall-skinny QR of [w A | w b] (memory O(columns^2)), then
solved by SVD of R (equivalent to ``lstsq`` of the full system), with an optional ridge term.
"""
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from emtool.data.dataset import read_dataset
from emtool.analysis.evaluate import evaluate_images, labels_minus_reference, metrics_summary
from emtool.fitting.fitsnap_input import read_fitsnap_input
from emtool.potentials.models import save_model, subset_record
from emtool.parallel import ProgressLog, run_indexed
from emtool.descriptors.params import SnapParams
from emtool.errors import ParameterError
from emtool.descriptors.snap import bispectrum, bispectrum_derivatives, quadratic_columns
from emtool.potentials.snap import SnapPotential
from emtool.fitting.split import split_configurations
from emtool.fitting.weights import GroupWeights
from emtool.potentials.zbl import ZBLPotential

LOG = logging.getLogger(__name__)


@dataclass
class TallSkinnyQR:
    """Incremental QR of stacked row blocks [A | b]: blocks are buffered up to ``chunk_rows``
    rows, then reduced to R, (columns+1)^2; memory O(chunk_rows x columns)."""

    ncols: int
    chunk_rows: int = 65536
    r: np.ndarray = field(default=None)
    nrows: int = 0
    _buffer: list = field(default_factory=list)
    _buffered: int = 0

    def add(self, a, b):
        self._buffer.append(np.hstack([a, b[:, None]]))
        self._buffered += len(a)
        self.nrows += len(a)
        if self._buffered >= self.chunk_rows:
            self._reduce()

    def _reduce(self):
        blocks = ([self.r] if self.r is not None else []) + self._buffer
        if blocks:
            self.r = np.linalg.qr(np.vstack(blocks), mode="r")
        self._buffer, self._buffered = [], 0

    def solve(self, ridge=0.0, rcond=None):
        """Least-squares coefficients (ncols,) and the weighted residual norm."""
        self._reduce()
        if self.r is None:
            raise ParameterError("no rows to fit")
        r = self.r
        if r.shape[0] < self.ncols + 1:
            r = np.vstack([r, np.zeros((self.ncols + 1 - r.shape[0], self.ncols + 1))])
        a, rhs, residual = r[:self.ncols, :self.ncols], r[:self.ncols, -1], abs(r[self.ncols, -1])
        if ridge > 0:
            a = np.vstack([a, np.sqrt(ridge) * np.eye(self.ncols)])
            rhs = np.concatenate([rhs, np.zeros(self.ncols)])
        x = np.linalg.lstsq(a, rhs, rcond=rcond)[0]
        return x, residual


def configuration_rows(atoms, params, quadratic=False, derivatives=True):
    """Design rows of one configuration: (energy row (ncols,), force rows (3N, ncols),
    stress rows (6, ncols) or None). Columns: 1, the D components, then (quadratic) the
    D(D+1)/2 products in LAMMPS order. Without ``derivatives`` only the energy row is built
    (from B alone) and the force and stress rows are None."""
    if not derivatives:
        b = bispectrum(atoms, params.replace(quadraticflag=int(quadratic)))
        return np.concatenate([[1.0], b.mean(0)]), None, None
    der = bispectrum_derivatives(atoms, params)
    b = der.b
    n, d = b.shape
    grad = der.per_atom()                                  # (N, D, 3) d(sum B)/dr
    energy = np.concatenate([[float(n)], b.sum(0)])
    forces = np.concatenate([np.zeros((n, 1, 3)), -grad], axis=1)
    virial = np.concatenate([np.zeros((1, 3, 3)), der.virial()], axis=0)   # (1+D, 3, 3)
    if quadratic:
        k, l = np.triu_indices(d)
        scale = np.where(k == l, 0.5, 1.0)
        energy = np.concatenate([energy, quadratic_columns(b).sum(0)])
        # d(s B_k B_l)/dr_j from atom i: s (B_ik dB_il + B_il dB_ik)/dr_j, per pair
        dq = scale[None, :, None] * (b[der.i][:, k, None] * der.dbdr[:, l, :]
                                     + b[der.i][:, l, None] * der.dbdr[:, k, :])
        qgrad = np.zeros((n, len(k), 3))
        np.add.at(qgrad, der.j, dq)
        np.subtract.at(qgrad, der.i, dq)
        forces = np.concatenate([forces, -qgrad], axis=1)
        qvirial = -np.einsum("pca,pb->cab", dq, der.rij)
        virial = np.concatenate([virial, qvirial], axis=0)
    forces = forces.transpose(0, 2, 1).reshape(3 * n, -1)
    energy = energy / n
    stress = None
    if np.all(atoms.pbc):
        volume = atoms.get_volume()
        voigt = [(0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1)]
        stress = np.array([-virial[:, a, c] / volume for a, c in voigt])
    return energy, forces, stress


def weighted_rows(atoms, params, weights, reference, quadratic):
    """Weighted design rows and right-hand side (A (rows, ncols), b (rows,)) of one labeled
    configuration (see the module docstring)."""
    group = atoms.info.get("group", "")
    w = GroupWeights() if weights is None else weights.get(group, GroupWeights())
    e_row, f_rows, s_rows = configuration_rows(atoms, params, quadratic,
                                               derivatives=w.force > 0 or w.stress > 0)
    e_true, f_true, s_true = labels_minus_reference(atoms, reference)
    rows = [w.energy * e_row[None, :]]
    rhs = [np.array([w.energy * e_true])]
    if w.force > 0:
        rows.append(w.force * f_rows)
        rhs.append(w.force * f_true)
    if w.stress > 0 and s_rows is not None and s_true is not None:
        rows.append(w.stress * s_rows)
        rhs.append(w.stress * s_true)
    return np.vstack(rows), np.concatenate(rhs)


def _rows_from_file(params, weights, reference, quadratic, path, index):
    return weighted_rows(read_dataset(path, indices=[index])[0], params, weights, reference,
                         quadratic)


def fit_snap(images, params, weights=None, reference=None, quadratic=False, ridge=0.0,
             rcond=None, workers=1, source=None):
    """Fit SNAP coefficients (1 + D [+ D(D+1)/2],) to labeled ``images``.

    weights : {group: GroupWeights} (default GroupWeights() for every group); reference : an
    emtool potential whose energy/forces/stress are subtracted from the labels first.
    With ``workers`` > 1 and ``source`` (the dataset path the images come from), the rows are
    built in worker processes that read their configurations from ``source``.
    Returns (coefficients, info) with info = dict(rows, residual). Progress is logged (INFO)
    every 10 % of the configurations.
    """
    d = params.ncoeff
    qr = TallSkinnyQR(1 + d + (d * (d + 1) // 2 if quadratic else 0))
    progress = ProgressLog(LOG, "fit rows", len(images))

    def take(rows):
        qr.add(*rows)
        progress.advance()
    if workers > 1 and source is not None:
        run_indexed(_rows_from_file, (params, weights, reference, quadratic, str(source)),
                    [a.info["index"] for a in images], take, workers, chunk=32)
    else:
        for atoms in images:
            take(weighted_rows(atoms, params, weights, reference, quadratic))
    coefficients, residual = qr.solve(ridge, rcond)
    return coefficients, dict(rows=qr.nrows, residual=residual)


def fit_dataset(train_path, output, model="linear", params=None, weights=None, zbl=None,
                ridge=0.0, validation=0.0, seed=0, validation_groups=(), fitsnap_input=None,
                workers=1):
    """Fit a SNAP model to the labeled configurations of dataset ``train_path``, save it as an
    emtool model file ``output`` and return its metadata (settings, train/validation metrics
    and, as ``subsets``, which configurations each part took: ``emtool.potentials.models``).
    ``fitsnap_input`` (a FitSNAP .in) supplies params, group weights and the reference
    potential; ``zbl`` (a ZBLSpec) is subtracted before the fit and overlaid after.
    """
    if model not in ("linear", "quadratic"):
        raise ParameterError(f"unknown SNAP model {model!r}: linear or quadratic")
    stored = read_dataset(train_path)
    images = [a for a in stored
              if a.calc is not None and np.isfinite(a.calc.results.get("energy", np.nan))]
    if not images:
        raise ParameterError(f"{train_path}: no labeled configurations")
    elements = tuple(sorted({s for a in images for s in a.get_chemical_symbols()}))
    if fitsnap_input is not None:
        setup = read_fitsnap_input(fitsnap_input)
        params, weights = setup.params, setup.weights
        zbl = setup.reference.spec if setup.reference is not None else None
        present = {a.info.get("group", "") for a in images}
        unknown = sorted(set(weights) - present)
        if unknown:  # a misspelt group would silently leave the real one at the default weight
            raise ParameterError(f"{fitsnap_input}: [GROUPS] names groups not in {train_path}: "
                                 f"{', '.join(unknown)} (its groups: {', '.join(sorted(present))})")
    params = (params or SnapParams()).replace(
        quadraticflag=int(model == "quadratic") or (params.quadraticflag if params else 0))
    if not params.elements:
        if len(elements) != 1:
            raise ParameterError(f"{train_path}: several elements {elements}; give element "
                                 f"radii and weights (a FitSNAP input)")
        params = params.replace(elements=elements)
    reference = ZBLPotential(zbl, params.elements) if zbl is not None else None
    if not validation_groups and not 0 <= validation < 1:
        raise ParameterError(f"validation fraction must be in [0, 1), got {validation}")
    train, _, held = split_configurations([a.info.get("group", "") for a in images],
                                          (1 - validation, 0.0, validation), seed,
                                          validation_groups, draw_order=True,
                                          need_validation=False)
    train, held = [images[k] for k in train], [images[k] for k in held]
    LOG.info("%s SNAP fit on %s: %d training, %d validation configurations", model, train_path,
             len(train), len(held))
    coefficients, info = fit_snap(train, params, weights, reference, bool(params.quadraticflag),
                                  ridge, workers=workers, source=train_path)
    potential = SnapPotential(params, coefficients[None, :], zbl)
    metrics = {"train": metrics_summary(evaluate_images(potential, train, workers, train_path))}
    if held:
        metrics["validation"] = metrics_summary(evaluate_images(potential, held, workers, train_path))
    metadata = dict(dataset=str(Path(train_path).resolve()), model=model, ndof=len(coefficients),
                    ridge=ridge, validation=validation, seed=seed,
                    validation_groups=list(validation_groups),
                    fitsnap_input=str(fitsnap_input) if fitsnap_input else None,
                    rows=info["rows"], metrics=metrics,
                    subsets=subset_record(train_path, stored, train=train, validation=held))
    save_model(output, potential, metadata)
    return metadata
