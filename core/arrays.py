"""The array types every layer shares (numpy typing aliases), defined once.

Example::

    from latentserve.core.arrays import F32

    def decode(z: F32) -> F32: ...
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
"""float32 array: latents, images, direction vectors."""
F64 = npt.NDArray[np.float64]
"""float64 array: intermediate math."""
I64 = npt.NDArray[np.int64]
"""int64 array: class labels, factor indices."""
U8 = npt.NDArray[np.uint8]
"""uint8 array: 8-bit images."""
Arrays = dict[str, npt.NDArray[np.generic]]
"""Named arrays: the inputs or outputs of one ONNX component call."""

__all__ = ["F32", "F64", "I64", "U8", "Arrays"]
