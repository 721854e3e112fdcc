"""Dynamics: velocity Verlet, the CSVR thermostat and the paper's energy-conservation test."""
