"""Descriptors: SNAP parameters, neighbor lists, bispectrum components and their derivatives,
distances and entropy in descriptor space, local structure types."""
