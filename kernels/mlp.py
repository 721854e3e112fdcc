"""Per-atom multilayer perceptron E_i = NN((B_i - shift) / scale) and its gradient beta_i.

Parameters are stored in the layout of LAMMPS ML-IAP ``model nn`` coefficient files: one flat
array, layer after layer, and within a layer node after node, each node as
``[bias, w_0, ..., w_(n_in - 1)]``. ``nnodes`` (L,) holds the width of each layer (the last
is 1, the atomic energy) and ``activation`` (L,) the activation applied to each layer's
nodes (codes below; the output layer is ``LINEAR``). The input width is D.

beta_i = dE_i/dB_i (eV per unit of B) is the per-atom coefficient vector of the adjoint SNAP
force path, so forces follow from ``beta_forces_kernel`` exactly as for linear SNAP.
"""
import numpy as np

from emtool.kernels.jit import jit

LINEAR, SIGMOID, TANH, RELU, SOFTPLUS = range(5)


@jit(inline=True)
def _activate(code, x):
    """(value, derivative) of activation ``code`` at x."""
    if code == SIGMOID:
        s = 1.0 / (1.0 + np.exp(-x))
        return s, s * (1.0 - s)
    if code == TANH:
        t = np.tanh(x)
        return t, 1.0 - t * t
    if code == RELU:
        if x > 0.0:
            return x, 1.0
        return 0.0, 0.0
    if code == SOFTPLUS:
        # log(1 + e^x) without overflow; derivative = sigmoid(x)
        return max(x, 0.0) + np.log1p(np.exp(-abs(x))), 1.0 / (1.0 + np.exp(-x))
    return x, 1.0


@jit
def mlp_energy_beta(b, shift, scale, coeffs, nnodes, activation):
    """Atomic energies and their descriptor gradients.

    b : (N, D) descriptors; shift, scale : (D,) input standardization; coeffs : flat
    parameters (layout in the module docstring); nnodes, activation : (L,) int64.
    Returns energy (N,) eV and beta (N, D) = dE_i/dB_i.
    """
    n, d = b.shape
    nl = nnodes.shape[0]
    width = d
    for l in range(nl):
        width = max(width, nnodes[l])
    value = np.empty((nl + 1, width))      # value[0] = standardized input, value[l+1] = layer l
    slope = np.empty((nl, width))          # activation derivative at each node
    grad = np.empty(width)
    grad_in = np.empty(width)
    energy = np.empty(n)
    beta = np.empty((n, d))
    for a in range(n):
        for k in range(d):
            value[0, k] = (b[a, k] - shift[k]) / scale[k]
        start = 0
        n_in = d
        for l in range(nl):
            for m in range(nnodes[l]):
                row = start + m * (n_in + 1)
                s = coeffs[row]
                for k in range(n_in):
                    s += coeffs[row + 1 + k] * value[l, k]
                value[l + 1, m], slope[l, m] = _activate(activation[l], s)
            start += nnodes[l] * (n_in + 1)
            n_in = nnodes[l]
        energy[a] = value[nl, 0]
        # backward: grad = dE/d(node output) of layer l, from the output down
        grad[0] = 1.0
        for l in range(nl - 1, -1, -1):
            n_in = d if l == 0 else nnodes[l - 1]
            start -= nnodes[l] * (n_in + 1)
            for k in range(n_in):
                grad_in[k] = 0.0
            for m in range(nnodes[l]):
                delta = grad[m] * slope[l, m]
                row = start + m * (n_in + 1)
                for k in range(n_in):
                    grad_in[k] += coeffs[row + 1 + k] * delta
            for k in range(n_in):
                grad[k] = grad_in[k]
        for k in range(d):
            beta[a, k] = grad[k] / scale[k]
    return energy, beta
