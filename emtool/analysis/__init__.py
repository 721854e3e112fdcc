"""Analysis: errors and predictions of a potential, descriptor-space comparison of datasets,
selection of the configurations that deserve DFT."""
