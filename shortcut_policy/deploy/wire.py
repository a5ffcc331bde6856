"""The policy server's messages: msgpack maps whose arrays travel as dtype + shape + raw bytes.

Nothing on the wire can name code: msgpack decodes to maps, lists, strings, numbers and bytes
only (no pickles, no extension types), and an array is rebuilt with ``np.frombuffer`` from a
dtype on a short allow-list. Every decoding fault is a :class:`WireError` whose message names
what was wrong, so the server can answer it and carry on.

Messages (all maps with a ``type``):

| type     | from   | fields                                                                  |
|----------|--------|-------------------------------------------------------------------------|
| hello    | server | ``protocol``, ``policy`` (the description: keys, shapes, budgets, ...)  |
| act      | client | ``id``, ``obs`` {key: array}, optional ``steps``                        |
| chunk    | server | ``id``, ``action`` (B, horizon, Da) float32, ``steps``, ``timing`` (ms) |
| reset    | both   | ``id``: forget this connection's observation history                    |
| error    | server | ``id`` (when known), ``kind``, ``error`` (the message)                  |

``obs`` arrays are one observation history ``(n_obs_steps, *shape)``, a batch of them
``(B, n_obs_steps, *shape)``, or one observation ``(*shape)`` that the server appends to the
connection's own history.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgpack
import numpy as np

PROTOCOL = 1
# Little-endian types only, so both ends agree on the bytes whatever their CPUs.
DTYPES = ("uint8", "int32", "int64", "float16", "float32", "float64", "bool")
MAX_DIMS = 8


class WireError(ValueError):
    """A message that cannot be decoded or lacks what its type needs."""


def encode_array(array: np.ndarray) -> dict[str, Any]:
    """``array`` as ``{"dtype", "shape", "data"}`` (C order, little-endian)."""
    array = np.asarray(array)
    if array.dtype.name not in DTYPES:
        raise WireError(f"arrays of dtype {array.dtype} cannot be sent; use one of {DTYPES}")
    array = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
    return {"dtype": array.dtype.name, "shape": list(array.shape), "data": array.tobytes()}


def decode_array(message: Any, name: str) -> np.ndarray:
    """The array that :func:`encode_array` wrote, after checking dtype, shape and byte count."""
    if not isinstance(message, Mapping) or set(message) != {"dtype", "shape", "data"}:
        raise WireError(f"{name} must be a map with exactly dtype, shape and data")
    dtype, shape, data = message["dtype"], message["shape"], message["data"]
    if dtype not in DTYPES:
        raise WireError(f"{name} has dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    if not isinstance(shape, list) or len(shape) > MAX_DIMS:
        raise WireError(f"{name} shape must be a list of at most {MAX_DIMS} sizes")
    if not all(isinstance(size, int) and not isinstance(size, bool) for size in shape):
        raise WireError(f"{name} shape must hold integers, got {shape}")
    if any(size < 0 for size in shape):
        raise WireError(f"{name} shape has a negative size: {shape}")
    if not isinstance(data, bytes):
        raise WireError(f"{name} data must be bytes")
    dtype = np.dtype(dtype).newbyteorder("<")
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise WireError(f"{name} has {len(data)} bytes of data; shape {shape} needs {expected}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def pack(message: Mapping[str, Any]) -> bytes:
    """One message as msgpack bytes; numpy arrays anywhere in it become array maps."""
    return msgpack.packb(_encode_arrays(message), use_bin_type=True)


def _encode_arrays(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return encode_array(value)
    if isinstance(value, Mapping):
        return {key: _encode_arrays(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_arrays(item) for item in value]
    if isinstance(value, np.generic):
        return value.item()
    return value


def unpack(data: bytes | str) -> dict[str, Any]:
    """A message map from msgpack bytes (arrays left encoded; see :func:`decode_array`)."""
    if isinstance(data, str):
        raise WireError("text frames are not messages; send msgpack as a binary frame")
    try:
        message = msgpack.unpackb(data, raw=False, strict_map_key=True, ext_hook=_no_extensions)
    except WireError:
        raise
    except Exception as err:  # msgpack raises several unrelated types for bad bytes
        raise WireError(f"not a msgpack message ({type(err).__name__}: {err})") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise WireError("a message must be a map with a string 'type'")
    return message


def _no_extensions(code: int, data: bytes) -> None:
    raise WireError(f"msgpack extension type {code} is not accepted")


def decode_obs(message: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The ``obs`` map of an ``act`` message as arrays."""
    obs = message.get("obs")
    if not isinstance(obs, Mapping) or not obs:
        raise WireError("an act message needs 'obs': a map from observation key to array")
    return {str(key): decode_array(value, f"obs[{key!r}]") for key, value in obs.items()}


def request_id(message: Mapping[str, Any]) -> int | None:
    """The message's ``id`` when it is an integer (replies echo it), else None."""
    value = message.get("id")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def error_message(kind: str, text: str, request: int | None = None) -> bytes:
    return pack({"type": "error", "id": request, "kind": kind, "error": text})
