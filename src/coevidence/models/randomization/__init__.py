"""Randomization inference family (re-randomisation tests for cluster-randomised designs)."""
