"""emtool: entropy-optimized training sets for machine-learned interatomic potentials."""
from emtool.params import ParameterError, SnapParams, n_bispectrum

__version__ = "0.1.0"
