"""Fitting: SNAP by least squares (with FitSNAP inputs and group weights) and the paper's
networks."""
