"""Potentials: SNAP, ZBL, the embedded W reference, networks, universal machine-learned
potentials, model files and the one potential-spec parser with its ASE calculator."""
