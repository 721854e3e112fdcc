"""Generation: entropy-optimized configurations (paper Eq. 1) and expert-style groups."""
