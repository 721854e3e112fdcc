"""Training of network potentials (``emtool.potentials.nn``) with PyTorch, the paper's protocol.

Protocol (paper "Neural Network Models"): configurations split at random 70/10/20 into
training, validation and test sets (or group-wise: named groups are the test set and the rest
is split 7:1; ``emtool.fitting.split``); Adam; the learning rate is halved when the validation loss has not improved by
``threshold`` (absolute) for ``patience`` epochs (``ReduceLROnPlateau``); ``epochs`` epochs;
the parameters of the epoch with the lowest validation loss are kept.

Loss per batch of configurations c (labels minus the optional ZBL reference):

    L = w_E mean_c ((E_c^NN - E_c) / N_c)^2  +  w_F mean_(c, k, a) (F_cka^NN - F_cka)^2

w_F = 0 is the paper's energy-only training; w_F > 0 also fits forces, with
F_k = -sum_i beta_i . dB_i/dr_k from the per-pair descriptor derivatives (memory: 24 D bytes
per neighbor pair). Training runs in float64, so the trained network is evaluated by emtool's
Numba kernels to round-off. A checkpoint (``OUTPUT.checkpoint.pt``) is written every
``checkpoint_every`` epochs; a rerun with the same settings resumes from it and gives the
same result as an uninterrupted run (epoch order is seeded by (seed, epoch)).
"""
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from emtool.data.dataset import read_dataset
from emtool.analysis.evaluate import evaluate_images, labels_minus_reference, metrics_summary
from emtool.files import atomic_write
from emtool.fitting.split import split_configurations
from emtool.potentials.models import save_model, subset_record
from emtool.potentials.nn import ACTIVATIONS, NetworkPotential, architecture_layers
from emtool.parallel import ProgressLog, run_indexed
from emtool.descriptors.params import SUPPORTED_KEYWORDS
from emtool.errors import ParameterError
from emtool.descriptors.snap import bispectrum, bispectrum_derivatives
from emtool.potentials.zbl import ZBLPotential

LOG = logging.getLogger(__name__)

TORCH_REQUIREMENT = "torch==2.13.0"


def _import_torch():
    try:
        import torch
    except ImportError:
        raise ParameterError(f"training networks needs PyTorch: pip install 'emtool[nn]' "
                             f"(pins the CPU build {TORCH_REQUIREMENT})") from None
    return torch


@dataclass(frozen=True)
class TrainingSettings:
    """Network and optimizer settings (defaults: the paper's protocol, energy-only).

    architecture : ``A1``..``B5`` (``emtool.potentials.nn.ARCHITECTURES``); activation : hidden-layer
    activation; epochs; batch_size : configurations per Adam step; learning_rate : initial;
    patience (epochs), threshold (absolute loss units), factor : the plateau rule;
    energy_weight (per (eV/atom)^2), force_weight (per (eV/Å)^2) : loss weights; seed :
    initialization and epoch order; split : (train, validation, test) fractions.
    """

    architecture: str = "A1"
    activation: str = "softplus"
    epochs: int = 800
    batch_size: int = 32
    learning_rate: float = 1e-3
    patience: int = 50
    threshold: float = 1e-4
    factor: float = 0.5
    energy_weight: float = 1.0
    force_weight: float = 0.0
    seed: int = 0
    split: tuple = (0.7, 0.1, 0.2)

    def __post_init__(self):
        architecture_layers(self.architecture, 1)
        if self.activation not in ACTIVATIONS:
            raise ParameterError(f"unknown activation {self.activation!r}: one of "
                                 f"{', '.join(ACTIVATIONS)}")
        for name in ("epochs", "batch_size", "patience"):
            if int(getattr(self, name)) != getattr(self, name) or getattr(self, name) < 1:
                raise ParameterError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if not self.learning_rate > 0 or not 0 < self.factor < 1 or self.threshold < 0:
            raise ParameterError("learning_rate must be > 0, factor in (0, 1), threshold >= 0")
        if self.energy_weight < 0 or self.force_weight < 0 or self.energy_weight + self.force_weight == 0:
            raise ParameterError("loss weights must be >= 0 and not both 0")
        split = tuple(float(f) for f in self.split)
        if len(split) != 3 or min(split) < 0 or abs(sum(split) - 1) > 1e-9:
            raise ParameterError(f"split must be three fractions >= 0 summing to 1, got {self.split}")
        object.__setattr__(self, "split", split)


# ----------------------------------------------------------------------------- data

def descriptor_record(atoms, params, reference=None, forces=False):
    """Training data of one labeled configuration: dict with b (N, D), energy (E - E_ref)/N
    (eV/atom) and, with ``forces``, f (N, 3) (F - F_ref), i, j (n_pairs,) and dbdr
    (n_pairs, D, 3) = dB_i/dr_j."""
    energy, f_true, _ = labels_minus_reference(atoms, reference)
    if not forces:
        return dict(b=bispectrum(atoms, params), energy=energy)
    der = bispectrum_derivatives(atoms, params)
    return dict(b=der.b, energy=energy, f=f_true.reshape(-1, 3), i=der.i, j=der.j, dbdr=der.dbdr)


def _record_from_file(params, reference, forces, path, index):
    return index, descriptor_record(read_dataset(path, indices=[index])[0], params, reference,
                                    forces)


class TrainingData:
    """Descriptors and labels of a list of configurations, concatenated.

    b (n_atoms, D); offsets (n+1,) atoms of configuration c are offsets[c]:offsets[c+1];
    energy (n,) eV/atom; with forces: f (n_atoms, 3), pair_offsets (n+1,), i, j (n_pairs,)
    global atom indices, dbdr (n_pairs, D, 3).
    """

    def __init__(self, records, forces):
        self.forces = forces
        natoms = [len(r["b"]) for r in records]
        self.offsets = np.concatenate([[0], np.cumsum(natoms)]).astype(np.int64)
        self.b = np.vstack([r["b"] for r in records])
        self.energy = np.array([r["energy"] for r in records])
        if forces:
            self.f = np.vstack([r["f"] for r in records])
            npairs = [len(r["i"]) for r in records]
            self.pair_offsets = np.concatenate([[0], np.cumsum(npairs)]).astype(np.int64)
            self.i = np.concatenate([r["i"] + o for r, o in zip(records, self.offsets)])
            self.j = np.concatenate([r["j"] + o for r, o in zip(records, self.offsets)])
            self.dbdr = np.concatenate([r["dbdr"] for r in records])

    @property
    def natoms(self):
        return np.diff(self.offsets)


def collect_records(images, params, reference=None, forces=False, workers=1, source=None):
    """Descriptor records (``descriptor_record``) of ``images``, in order; computed in
    worker processes reading ``source`` (the images' dataset) when ``workers`` > 1. Progress
    is logged (INFO) every 10 %."""
    progress = ProgressLog(LOG, "descriptors", len(images))
    if workers <= 1 or source is None:
        records = []
        for atoms in images:
            records.append(descriptor_record(atoms, params, reference, forces))
            progress.advance()
        return records
    found = {}

    def take(item):
        found.update([item])
        progress.advance()
    run_indexed(_record_from_file, (params, reference, forces, str(source)),
                [a.info["index"] for a in images], take, workers, chunk=32)
    return [found[a.info["index"]] for a in images]


def _batch_rows(offsets, configs):
    """Rows offsets[c]:offsets[c+1] of every c in ``configs``, concatenated, and the position
    of each row's configuration in ``configs``."""
    lengths = offsets[configs + 1] - offsets[configs]
    owner = np.repeat(np.arange(len(configs)), lengths)
    first = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    rows = offsets[configs][owner] + np.arange(lengths.sum()) - first[owner]
    return rows, owner


# ----------------------------------------------------------------------------- torch

def _activation_module(torch, name):
    functions = {"linear": lambda x: x, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                 "relu": torch.relu,
                 # exact log(1 + e^x), the formula of emtool.kernels.mlp (torch's Softplus
                 # switches to x above 20, a 2e-9 jump)
                 "softplus": lambda x: torch.logaddexp(x, torch.zeros_like(x))}

    class Activation(torch.nn.Module):
        def forward(self, x):
            return functions[name](x)
    return Activation()


def build_network(torch, d, nnodes, activation):
    """float64 ``torch.nn.Sequential``: Linear layers of widths ``nnodes`` after D inputs,
    ``activation`` after every hidden layer, a linear output."""
    layers, width = [], d
    for k, n in enumerate(nnodes):
        layers.append(torch.nn.Linear(width, int(n), dtype=torch.float64))
        if k < len(nnodes) - 1:
            layers.append(_activation_module(torch, activation))
        width = int(n)
    return torch.nn.Sequential(*layers)


def network_coefficients(network):
    """Flat ML-IAP-layout parameters (``emtool.kernels.mlp``) of a ``build_network`` model."""
    import torch
    blocks = [np.hstack([m.bias.detach().numpy()[:, None], m.weight.detach().numpy()]).ravel()
              for m in network if isinstance(m, torch.nn.Linear)]
    return np.concatenate(blocks)


class _Trainer:
    """Batches of configurations as torch tensors, the loss, and one epoch."""

    def __init__(self, torch, data, shift, scale, settings):
        self.torch, self.data, self.settings = torch, data, settings
        self.x = torch.from_numpy((data.b - shift) / scale)
        self.scale = torch.from_numpy(scale)
        self.energy = torch.from_numpy(data.energy)
        self.natoms = torch.from_numpy(data.natoms.astype(np.float64))
        if data.forces:
            self.f = torch.from_numpy(data.f)
            self.dbdr = torch.from_numpy(data.dbdr)
            self.local = np.zeros(len(data.b), np.int64)

    def loss(self, network, configs, create_graph):
        """Loss (scalar tensor) and its energy and force parts on configurations ``configs``."""
        torch, data, s = self.torch, self.data, self.settings
        rows, owner = _batch_rows(data.offsets, configs)
        x = self.x[rows]
        if data.forces:
            x.requires_grad_(True)
        e_atoms = network(x)[:, 0]
        owner_t = torch.from_numpy(owner)
        e_conf = torch.zeros(len(configs), dtype=torch.float64).index_add(0, owner_t, e_atoms)
        loss_e = torch.mean((e_conf / self.natoms[configs] - self.energy[configs]) ** 2)
        loss_f = torch.zeros((), dtype=torch.float64)
        if data.forces:
            grad = torch.autograd.grad(e_atoms.sum(), x, create_graph=create_graph)[0]
            beta = grad / self.scale
            pairs, _ = _batch_rows(data.pair_offsets, configs)
            self.local[rows] = np.arange(len(rows))
            i = torch.from_numpy(self.local[data.i[pairs]])
            j = torch.from_numpy(self.local[data.j[pairs]])
            contrib = torch.einsum("pd,pdc->pc", beta[i], self.dbdr[pairs])
            forces = (torch.zeros((len(rows), 3), dtype=torch.float64)
                      .index_add(0, i, contrib).index_add(0, j, -contrib))
            loss_f = torch.mean((forces - self.f[rows]) ** 2)
        total = s.energy_weight * loss_e + s.force_weight * loss_f
        return total, loss_e, loss_f

    def evaluate(self, network, configs):
        """(loss, energy RMSE eV/atom, force RMSE eV/Å or None) over ``configs``, batched."""
        totals = np.zeros(3)
        for part in np.array_split(configs, max(1, len(configs) // 256)):
            if self.data.forces:
                values = self.loss(network, part, create_graph=False)
            else:
                with self.torch.no_grad():
                    values = self.loss(network, part, create_graph=False)
            totals += len(part) * np.array([v.item() for v in values])
        total, mse_e, mse_f = totals / len(configs)
        return total, float(np.sqrt(mse_e)), float(np.sqrt(mse_f)) if self.data.forces else None

    def epoch(self, network, optimizer, train, epoch):
        """One pass over ``train`` in an order seeded by (seed, epoch); mean batch loss."""
        order = train[np.random.default_rng([self.settings.seed, epoch]).permutation(len(train))]
        losses = []
        for start in range(0, len(order), self.settings.batch_size):
            optimizer.zero_grad()
            total, _, _ = self.loss(network, order[start:start + self.settings.batch_size], True)
            total.backward()
            optimizer.step()
            losses.append(total.item())
        return float(np.mean(losses))


def train_network(data, params, settings, train, validation, checkpoint=None,
                  checkpoint_every=10, on_epoch=None, fingerprint=None, threads=1):
    """Train a network on ``data`` (``TrainingData``); returns (NetworkPotential without ZBL,
    history dict).

    train, validation : configuration index arrays; checkpoint : path of the resumable
    checkpoint (removed at the end); fingerprint : JSON-able description of the job that a
    checkpoint must match to be resumed; on_epoch(epoch, record) : progress callback (the
    losses are also logged at INFO every ``epochs``/20 epochs);
    threads : PyTorch threads (1 is fastest for the paper's small networks; a thread waiting
    for a busy core makes every batch 10x slower).
    """
    torch = _import_torch()
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _train(torch, data, params, settings, train, validation, checkpoint,
                      checkpoint_every, on_epoch, fingerprint)
    finally:
        torch.set_num_threads(previous)


def _train(torch, data, params, settings, train, validation, checkpoint, checkpoint_every,
           on_epoch, fingerprint):
    torch.manual_seed(settings.seed)
    d = data.b.shape[1]
    nnodes = architecture_layers(settings.architecture, d)
    rows, _ = _batch_rows(data.offsets, train)
    shift = data.b[rows].mean(axis=0)
    scale = data.b[rows].std(axis=0)
    scale[scale <= 1e-12 * max(1.0, np.abs(shift).max())] = 1.0
    network = build_network(torch, d, nnodes, settings.activation)
    with torch.no_grad():   # start from the mean energy per atom
        network[-1].bias.fill_(float(np.mean(data.energy[train])))
    optimizer = torch.optim.Adam(network.parameters(), lr=settings.learning_rate)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=settings.factor, patience=settings.patience,
        threshold=settings.threshold, threshold_mode="abs")
    trainer = _Trainer(torch, data, shift, scale, settings)
    state = dict(epoch=0, best_loss=np.inf, best=None, history=[])
    key = dict(fingerprint=fingerprint, settings=asdict(settings))
    if checkpoint is not None and Path(checkpoint).exists():
        saved = torch.load(checkpoint, weights_only=False)
        if saved["key"] != key:
            raise ParameterError(f"{checkpoint} is the checkpoint of a different training job; "
                                 f"delete it to start again")
        network.load_state_dict(saved["network"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        state = saved["state"]
        LOG.info("resuming from %s at epoch %d", checkpoint, state["epoch"])
    LOG.info("training %s: %d training, %d validation configurations, %d epochs",
             settings.architecture, len(train), len(validation), settings.epochs)
    log_every = max(1, settings.epochs // 20)
    while state["epoch"] < settings.epochs:
        epoch = state["epoch"] + 1
        start = time.perf_counter()
        train_loss = trainer.epoch(network, optimizer, train, epoch)
        val_loss, val_e, val_f = trainer.evaluate(network, validation)
        scheduler.step(val_loss)
        record = dict(epoch=epoch, train_loss=train_loss, validation_loss=val_loss,
                      validation_energy_rmse=val_e, validation_force_rmse=val_f,
                      learning_rate=optimizer.param_groups[0]["lr"],
                      seconds=time.perf_counter() - start)
        state["history"].append(record)
        if val_loss < state["best_loss"]:
            state["best_loss"] = val_loss
            state["best"] = {k: v.clone() for k, v in network.state_dict().items()}
        state["epoch"] = epoch
        if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == settings.epochs):
            _save_checkpoint(torch, checkpoint, dict(key=key, network=network.state_dict(),
                                                     optimizer=optimizer.state_dict(),
                                                     scheduler=scheduler.state_dict(),
                                                     state=state))
        if epoch % log_every == 0 or epoch == settings.epochs:
            LOG.info("epoch %d/%d: train loss %.4g, validation loss %.4g, lr %.3g, %.2f s/epoch",
                     epoch, settings.epochs, train_loss, val_loss, record["learning_rate"],
                     record["seconds"])
        if on_epoch is not None:
            on_epoch(epoch, record)
    network.load_state_dict(state["best"])
    potential = NetworkPotential(params, nnodes, settings.activation,
                                 network_coefficients(network), shift, scale)
    if checkpoint is not None:
        Path(checkpoint).unlink(missing_ok=True)
    return potential, dict(history=state["history"], best_validation_loss=state["best_loss"])


def _save_checkpoint(torch, path, content):
    atomic_write(path, lambda tmp: torch.save(content, tmp))


# ----------------------------------------------------------------------------- workflow

def load_descriptor_file(path, params, images, positions):
    """Records (b, energy) of ``images`` from a ``emtool descriptors`` .npz of their dataset.

    The file must hold the descriptors of every configuration of the dataset, in order, with
    the settings of ``params``; ``positions`` are the images' places in the dataset. Anything
    else is a ``ParameterError``.
    """
    try:
        npz = np.load(path)
        b, offsets = npz["B"], npz["config_offsets"]
        stored = {name: npz[name].item() for name in SUPPORTED_KEYWORDS}
    except (OSError, ValueError, KeyError) as err:
        raise ParameterError(f"{path}: not an emtool descriptors file ({err})") from None
    wanted = {name: getattr(params, name) for name in stored}
    for name, value in stored.items():
        if value != wanted[name]:
            raise ParameterError(f"{path}: descriptors computed with {name} {value}, but the fit "
                                 f"uses {name} {wanted[name]}")
    records = []
    for atoms, c in zip(images, positions):
        if c + 1 >= len(offsets) or offsets[c + 1] - offsets[c] != len(atoms):
            raise ParameterError(f"{path}: does not match the dataset (configuration {c})")
        energy, _, _ = labels_minus_reference(atoms, None)
        records.append(dict(b=b[offsets[c]:offsets[c + 1]], energy=energy))
    return records


def fit_network_dataset(train_path, output, settings, params, zbl=None, test_groups=(),
                        descriptors=None, workers=1, on_epoch=None, threads=1):
    """Train a network potential on the labeled configurations of dataset ``train_path``, save
    it as an emtool model file ``output`` and return its metadata (settings, split, per-epoch
    history, train/validation/test metrics from emtool's own evaluation and, as ``subsets``,
    which configurations each part took: ``emtool.potentials.models``).

    params : linear SnapParams of one element (element name filled in from the data);
    zbl : ZBLSpec subtracted from the labels and overlaid; descriptors : optional
    ``emtool descriptors`` .npz of the dataset (energy-only, no ZBL) instead of computing;
    workers : processes computing descriptors and metrics; threads : PyTorch threads.
    """
    _import_torch()
    positions, images = [], []
    stored = read_dataset(train_path)
    for k, atoms in enumerate(stored):
        if atoms.calc is not None and np.isfinite(atoms.calc.results.get("energy", np.nan)):
            positions.append(k)
            images.append(atoms)
    if not images:
        raise ParameterError(f"{train_path}: no labeled configurations")
    elements = sorted({s for a in images for s in a.get_chemical_symbols()})
    if len(elements) != 1:
        raise ParameterError(f"{train_path}: networks take one element, found {elements}")
    params = params.replace(elements=tuple(elements), quadraticflag=0)
    forces = settings.force_weight > 0
    if descriptors is not None and (forces or zbl is not None):
        raise ParameterError("--descriptors serves energy-only fits without ZBL")
    train, validation, test = split_configurations(
        [a.info.get("group", "") for a in images], settings.split, settings.seed, test_groups)
    reference = ZBLPotential(zbl, params.elements) if zbl is not None else None
    start = time.perf_counter()
    if descriptors is not None:
        records = load_descriptor_file(descriptors, params, images, positions)
    else:
        records = collect_records(images, params, reference, forces, workers, train_path)
    data = TrainingData(records, forces)
    seconds_descriptors = time.perf_counter() - start
    fingerprint = dict(dataset=str(Path(train_path).resolve()), configs=len(images),
                       params=asdict(params), zbl=asdict(zbl) if zbl else None,
                       test_groups=list(test_groups))
    start = time.perf_counter()
    potential, info = train_network(data, params, settings, train, validation,
                                    checkpoint=f"{output}.checkpoint.pt", on_epoch=on_epoch,
                                    fingerprint=fingerprint, threads=threads)
    seconds_training = time.perf_counter() - start
    potential = NetworkPotential(potential.params, potential.nnodes, potential.activation,
                                 potential.coeffs, potential.shift, potential.scale, zbl)
    metrics = {}
    for name, part in (("train", train), ("validation", validation), ("test", test)):
        if len(part):
            subset = [images[k] for k in part]
            metrics[name] = metrics_summary(evaluate_images(potential, subset, workers, train_path))
    history = info["history"]
    metadata = dict(dataset=str(Path(train_path).resolve()), model=f"nn:{settings.architecture}",
                    ndof=potential.ndof, settings=asdict(settings), test_groups=list(test_groups),
                    split=dict(train=len(train), validation=len(validation), test=len(test)),
                    seconds_descriptors=seconds_descriptors, seconds_training=seconds_training,
                    seconds_per_epoch=float(np.median([h["seconds"] for h in history])),
                    best_validation_loss=info["best_validation_loss"], metrics=metrics,
                    history=history,
                    subsets=subset_record(train_path, stored,
                                          **{name: [images[k] for k in part] for name, part in
                                             (("train", train), ("validation", validation),
                                              ("test", test))}))
    save_model(output, potential, metadata)
    return metadata
