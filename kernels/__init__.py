"""Numba kernels of emtool: pure ``@njit`` functions on arrays and scalars.

Imported as ``emtool.kernels``. Nothing here knows of ASE, HDF5, click or logging;
the Python layer (``emtool``) validates inputs once before calling a kernel.
"""
