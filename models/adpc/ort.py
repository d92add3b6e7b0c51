"""A minimal ONNX Runtime runner through its C API (ctypes), for tests and
the cross-check on machines without onnxruntime for Python. It loads the same
library the Go runtime uses: EDGE_ORT_LIB, else <repo>/.deps/libonnxruntime.so.1.

Only what running a stage graph on the CPU needs: sessions, float32 and int64
tensors in, float32 tensors out. Indices below are positions in `struct OrtApi` (ORT_API_VERSION 24).
"""

from __future__ import annotations

import ctypes as C
import os
from pathlib import Path
from typing import Mapping, Optional, Sequence

import numpy as np

API_VERSION = 24
_GET_ERROR_MESSAGE = 2
_CREATE_ENV = 3
_CREATE_SESSION = 7
_RUN = 9
_CREATE_SESSION_OPTIONS = 10
_SET_INTRA_OP_NUM_THREADS = 24
_CREATE_TENSOR_WITH_DATA = 49
_GET_TENSOR_MUTABLE_DATA = 51
_CREATE_CPU_MEMORY_INFO = 69
_FLOAT = 1  # ONNX_TENSOR_ELEMENT_DATA_TYPE_FLOAT
_INT64 = 7  # ONNX_TENSOR_ELEMENT_DATA_TYPE_INT64
_ARENA_ALLOCATOR = 1
_MEM_TYPE_DEFAULT = 0
_LOG_WARNING = 2

_P = C.c_void_p
_PP = C.POINTER(C.c_void_p)


class ORTUnavailable(RuntimeError):
    """The ONNX Runtime library could not be loaded."""


def library_path() -> Path:
    env = os.environ.get("EDGE_ORT_LIB")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / ".deps" / "libonnxruntime.so.1"


class Runtime:
    """One ORT environment; create sessions with `session`."""

    def __init__(self, path: Optional[str | Path] = None, threads: int = 2) -> None:
        path = Path(path) if path else library_path()
        try:
            self._lib = C.CDLL(str(path))
        except OSError as e:
            raise ORTUnavailable(f"load {path}: {e}") from None
        self._lib.OrtGetApiBase.restype = C.POINTER(_P * 2)
        base = self._lib.OrtGetApiBase().contents
        get_api = C.CFUNCTYPE(_P, C.c_uint32)(base[0])
        api = get_api(API_VERSION)
        if not api:
            raise ORTUnavailable(f"{path} does not provide ORT API version {API_VERSION}")
        self._api = C.cast(api, C.POINTER(_P * 200)).contents
        self._threads = threads
        self._env = _P()
        self._call(_CREATE_ENV, [C.c_int, C.c_char_p, _PP], _LOG_WARNING, b"adpc", C.byref(self._env))
        self._mem = _P()
        self._call(_CREATE_CPU_MEMORY_INFO, [C.c_int, C.c_int, _PP], _ARENA_ALLOCATOR, _MEM_TYPE_DEFAULT,
                   C.byref(self._mem))

    def _fn(self, index: int, argtypes: list, restype=_P):
        return C.CFUNCTYPE(restype, *argtypes)(self._api[index])

    def _call(self, index: int, argtypes: list, *args) -> None:
        status = self._fn(index, argtypes)(*args)
        if status:
            msg = self._fn(_GET_ERROR_MESSAGE, [_P], C.c_char_p)(status)
            raise RuntimeError(f"onnxruntime: {msg.decode(errors='replace')}")

    def session(self, model: str | Path) -> "Session":
        opts = _P()
        self._call(_CREATE_SESSION_OPTIONS, [_PP], C.byref(opts))
        self._call(_SET_INTRA_OP_NUM_THREADS, [_P, C.c_int], opts, self._threads)
        sess = _P()
        self._call(_CREATE_SESSION, [_P, C.c_char_p, _P, _PP], self._env, str(model).encode(), opts,
                   C.byref(sess))
        return Session(self, sess)


class Session:
    """A loaded graph; `run` maps input names to arrays and returns outputs."""

    def __init__(self, rt: Runtime, handle: C.c_void_p) -> None:
        self._rt = rt
        self._h = handle

    def run(self, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, Sequence[int]]) -> dict[str, np.ndarray]:
        """outputs maps each wanted output name to its (static) shape. Inputs
        are float32, except int64 arrays, which stay int64."""
        rt = self._rt
        keep = []
        values = []
        for name, arr in inputs.items():
            is_int = np.asarray(arr).dtype == np.int64
            a = np.ascontiguousarray(arr, dtype=np.int64 if is_int else np.float32)
            keep.append(a)
            shape = (C.c_int64 * a.ndim)(*a.shape)
            v = _P()
            rt._call(_CREATE_TENSOR_WITH_DATA, [_P, _P, C.c_size_t, C.POINTER(C.c_int64), C.c_size_t, C.c_int, _PP],
                     rt._mem, a.ctypes.data, a.nbytes, shape, a.ndim, _INT64 if is_int else _FLOAT, C.byref(v))
            values.append(v)
        in_names = (C.c_char_p * len(inputs))(*[n.encode() for n in inputs])
        in_vals = (_P * len(values))(*[v.value for v in values])
        out_names = (C.c_char_p * len(outputs))(*[n.encode() for n in outputs])
        out_vals = (_P * len(outputs))()
        rt._call(_RUN, [_P, _P, _P, _P, C.c_size_t, _P, C.c_size_t, _P], self._h, None, in_names, in_vals,
                 len(values), out_names, len(outputs), out_vals)
        result = {}
        for i, (name, shape) in enumerate(outputs.items()):
            ptr = _P()
            rt._call(_GET_TENSOR_MUTABLE_DATA, [_P, _PP], out_vals[i], C.byref(ptr))
            n = int(np.prod(shape))
            buf = (C.c_float * n).from_address(ptr.value)
            result[name] = np.frombuffer(buf, dtype=np.float32, count=n).reshape(shape).copy()
        return result
