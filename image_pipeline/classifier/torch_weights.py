"""Read a PyTorch checkpoint of the legacy (pre-1.6, non-zip) format without torch.

The format (torch/serialization.py, `_legacy_load`): five records in one file. Four
pickles (a magic number, the protocol version, system info, then the object, whose
tensors refer to storages through pickle's persistent ids), then a pickle listing the
storage keys in the order their raw data follows, each as a little-endian int64 count of
elements and the elements themselves.

Unpickling runs code named by the file, so only the handful of names a state dict needs
are resolved, each to a harmless stand-in; anything else is refused. The caller also
checks the file's SHA-256 before reading it.
"""

from __future__ import annotations

import pickle
from collections import OrderedDict
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
PROTOCOL_VERSION = 1001

# Storage classes a state dict names, and the numpy type of their elements.
_STORAGE_TYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint this reader accepts."""


@dataclass
class _Storage:
    key: str
    dtype: np.dtype
    size: int
    data: np.ndarray | None = None


@dataclass
class _Tensor:
    storage: _Storage
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        assert self.storage.data is not None
        if not self.shape:
            return self.storage.data[self.offset].copy()
        itemsize = self.storage.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            self.storage.data[self.offset :],
            shape=self.shape,
            strides=tuple(step * itemsize for step in self.stride),
            writeable=False,
        )
        return np.array(view)  # a contiguous copy, independent of the file's buffer


def _rebuild_tensor(storage: _Storage, offset: int, shape: tuple, stride: tuple, *_: Any):
    return _Tensor(storage, offset, tuple(shape), tuple(stride))


class _StorageType:
    def __init__(self, name: str) -> None:
        self.dtype = _STORAGE_TYPES[name]


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            return OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_TYPES:
            return _StorageType(name)
        raise CheckpointError(f"the checkpoint names {module}.{name}, which is not allowed")

    def persistent_load(self, saved_id: Any) -> _Storage:
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] == "storage"):
            raise CheckpointError(f"unexpected persistent id {saved_id!r:.80}")
        storage_type, key, _location, size, view = saved_id[1:6]
        if view is not None:
            raise CheckpointError("storage views are not supported")
        if key not in self.storages:
            self.storages[key] = _Storage(str(key), storage_type.dtype, int(size))
        return self.storages[key]


def load_state_dict(file: IO[bytes]) -> dict[str, np.ndarray]:
    """The tensors of a legacy checkpoint that holds a state dict, as numpy arrays."""
    if _load_plain(file) != MAGIC_NUMBER:
        raise CheckpointError("not a legacy PyTorch checkpoint (wrong magic number)")
    if _load_plain(file) != PROTOCOL_VERSION:
        raise CheckpointError("unsupported checkpoint protocol version")
    _load_plain(file)  # system info: endianness and type sizes of the machine that saved it
    unpickler = _Unpickler(file)
    try:
        state = unpickler.load()
    except EOFError as exc:
        raise CheckpointError("the checkpoint is truncated") from exc
    keys = _load_plain(file)
    for key in keys:
        storage = unpickler.storages[key]
        count = int(np.frombuffer(_read(file, 8), "<i8")[0])
        if count != storage.size:
            raise CheckpointError(f"storage {key} holds {count} elements, {storage.size} expected")
        storage.data = np.frombuffer(_read(file, count * storage.dtype.itemsize), storage.dtype)
    if not isinstance(state, dict):
        raise CheckpointError("the checkpoint does not hold a state dict")
    return {name: tensor.array() for name, tensor in state.items() if isinstance(tensor, _Tensor)}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise CheckpointError(f"the checkpoint header names {module}.{name}")


def _load_plain(file: IO[bytes]) -> Any:
    try:
        return _PlainUnpickler(file).load()
    except EOFError as exc:
        raise CheckpointError("the checkpoint is truncated") from exc


def _read(file: IO[bytes], size: int) -> bytes:
    data = file.read(size)
    if len(data) != size:
        raise CheckpointError("the checkpoint is truncated")
    return data
