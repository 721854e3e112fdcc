"""Labeling: reference energies, forces and stress from any labeler, journaled and resumable."""
