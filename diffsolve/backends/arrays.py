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


def widen_half(obj, torch):
    """A float16 / bfloat16 array (torch tensor or NumPy array) as float32, a copy: diffsolve computes in float32
    or float64 (half-precision model outputs are accepted, the arithmetic is float32); anything else unchanged."""
    if torch is not None:
        return obj.detach().float() if obj.dtype in (torch.float16, torch.bfloat16) else obj
    if isinstance(obj, np.ndarray) and obj.dtype == np.float16:
        return obj.astype(np.float32)
    return obj
