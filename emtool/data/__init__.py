"""Data: the HDF5 dataset (schema, journal, locks), subsets and merges, exchange formats
(FitSNAP JSON, extxyz, ASE formats) and LAMMPS SNAP files."""
