"""Array kinds: how a user's arrays map to an engine's and back (NumPy arrays, torch tensors)."""

from __future__ import annotations

import numpy as np

__all__ = ["ArrayKind", "NUMPY", "TorchKind", "torch_module"]


class ArrayKind:
    """Hands engine arrays back to the user in the kind they passed in (here: as they are)."""

    def wrap(self, arr):
        return arr


NUMPY = ArrayKind()


class TorchKind(ArrayKind):
    """torch tensors; the engine array is shared, never copied."""

    def __init__(self, torch, device):
        self.torch, self.device = torch, device

    def wrap(self, arr):
        if isinstance(arr, np.ndarray):
            return self.torch.from_numpy(arr)
        return self.torch.as_tensor(arr, device=self.device)  # __cuda_array_interface__: zero-copy


def torch_module(obj):
    """The torch module when ``obj`` is a torch tensor, else None (torch is never imported otherwise)."""
    if type(obj).__module__.startswith("torch"):
        import torch

        return torch
    return None
