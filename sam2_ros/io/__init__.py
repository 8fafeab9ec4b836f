"""Offline input and output for the ``sam2-ros track`` command: frame sources, prompts, writers.

Submodules are imported where used; importing this package stays free of torch.
"""
