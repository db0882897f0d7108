"""hintrl: nightly offline RL for e-commerce search hints."""

__version__ = "0.1.0"
