"""A synthetic search world with known ground truth; writes raw logs of the raw contract."""
