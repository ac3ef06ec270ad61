"""Host functions: Python callables lent to packs, the way every Extism PDK imports them.

A handler gets the pack's input (``bytes``, ``str`` or parsed JSON, as declared) and, when it
takes a second parameter, a :class:`HostCall` with the call's ``context`` and the calling
pack; what it returns goes back to the pack. Everything here is conversion: the native
module hands over bytes and takes bytes back, and the core does the rest (limits, usage,
the ``host_function_error`` a raised exception becomes).
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union, overload

__all__ = ["HostCall", "HostFn", "host_fn", "Functions", "EXTISM_USER"]

EXTISM_USER = "extism:host/user"
"""The import module every Extism PDK's host-function helper uses."""

@dataclass(frozen=True)
class HostCall:
    """What a handler knows about the call it serves."""

    context: Any
    """The ``context`` the caller passed to ``Pack.call`` (``None`` when none)."""
    pack_name: str
    """The calling pack's name."""
    pack_id: str
    """The calling pack's id (SHA-256 of its module)."""
    function: str
    """The host function's import name."""


@dataclass(frozen=True)
class HostFn:
    """A handler with the import name, namespace and encodings it is lent under."""

    handler: Callable[..., Any]
    name: str
    namespace: str = EXTISM_USER
    input: str = "bytes"
    output: str = "bytes"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.handler(*args, **kwargs)


Functions = Union[Mapping[str, Union[Callable[..., Any], HostFn]], Iterable[HostFn]]
"""What ``Pack(..., functions=...)`` takes: ``{name: handler}`` or ``@host_fn`` functions."""


@overload
def host_fn(
    handler: Callable[..., Any],
    /,
    *,
    name: Optional[str] = None,
    namespace: str = EXTISM_USER,
    input: str = "bytes",
    output: str = "bytes",
) -> HostFn: ...


@overload
def host_fn(
    handler: None = None,
    /,
    *,
    name: Optional[str] = None,
    namespace: str = EXTISM_USER,
    input: str = "bytes",
    output: str = "bytes",
) -> Callable[[Callable[..., Any]], HostFn]: ...


def host_fn(
    handler: Optional[Callable[..., Any]] = None,
    /,
    *,
    name: Optional[str] = None,
    namespace: str = EXTISM_USER,
    input: str = "bytes",
    output: str = "bytes",
) -> Union[HostFn, Callable[[Callable[..., Any]], HostFn]]:
    """Declares a host function: ``@host_fn``, ``@host_fn(input="json", output="json")``, or
    ``host_fn(handler, input="json")`` for a function defined elsewhere.

    ``name`` defaults to the function's own name. ``input`` says what the handler receives
    (``bytes``, UTF-8 ``str``, or parsed ``json``); ``output`` what it returns (``bytes``
    (``str`` is accepted and sent as UTF-8), or any JSON-serialisable value for ``json``).
    """

    def declare(function: Callable[..., Any]) -> HostFn:
        for encoding in (input, output):
            if encoding not in ("bytes", "str", "json"):
                raise ValueError(f"encoding must be 'bytes', 'str' or 'json', not {encoding!r}")
        return HostFn(function, name or function.__name__, namespace, input, output)

    return declare if handler is None else declare(handler)


def native_functions(functions: Optional[Functions]) -> List[Tuple[str, str, Callable[..., bytes]]]:
    """``(name, namespace, adapter)`` for the native module, one per declared function."""
    if functions is None:
        return []
    if isinstance(functions, Mapping):
        declared = [
            value if isinstance(value, HostFn) and value.name == key
            else _renamed(value, key)
            for key, value in functions.items()
        ]
    else:
        declared = list(functions)
        for value in declared:
            if not isinstance(value, HostFn):
                raise TypeError(
                    f"functions must be a mapping of names to callables or @host_fn functions, not {type(value).__name__}"
                )
    return [(fn.name, fn.namespace, _adapter(fn)) for fn in declared]


def _renamed(value: Union[Callable[..., Any], HostFn], name: str) -> HostFn:
    if isinstance(value, HostFn):
        return HostFn(value.handler, name, value.namespace, value.input, value.output)
    if not callable(value):
        raise TypeError(f"host function {name!r} is not callable")
    return HostFn(value, name)


def _wants_call(handler: Callable[..., Any]) -> bool:
    """True when the handler takes a second positional parameter (the :class:`HostCall`)."""
    try:
        parameters = inspect.signature(handler).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [
        p for p in parameters
        if p.kind in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    ]
    return len(positional) >= 2 or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters)


def _adapter(fn: HostFn) -> Callable[..., bytes]:
    """The callable the native module invokes: bytes and call facts in, bytes out."""
    handler, decode, encode = fn.handler, _DECODERS[fn.input], _ENCODERS[fn.output]
    if _wants_call(handler):
        def with_call(data: bytes, context_json: Optional[str], pack_name: str, pack_id: str, function: str) -> bytes:
            context = None if context_json is None else json.loads(context_json)
            return encode(handler(decode(data), HostCall(context, pack_name, pack_id, function)))
        return with_call

    def input_only(data: bytes, context_json: Optional[str], pack_name: str, pack_id: str, function: str) -> bytes:
        return encode(handler(decode(data)))
    return input_only


def _to_bytes(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"a host function returns bytes or str, not {type(value).__name__}; declare output='json' to return data")


_DECODERS: Dict[str, Callable[[bytes], Any]] = {
    "bytes": lambda data: data,
    "str": lambda data: data.decode("utf-8"),
    "json": lambda data: json.loads(data) if data else None,
}

_ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    "bytes": _to_bytes,
    "str": _to_bytes,
    "json": lambda value: json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
}
