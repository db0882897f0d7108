"""Offline RL: masked d3rlpy policies, OPE, the promotion gate and the MLflow registry."""
