"""packhost: run WebAssembly plugins ("packs") from Python in a sandbox with hard limits.

>>> import packhost
>>> pack = packhost.Pack("plugins/dist/text_tools.wasm", limits={"timeout_ms": 500})
>>> pack.call("count_vowels", {"text": "hello world"}).json()
{'count': 3, 'vowels': 'eoo'}

The same Rust core runs packs for every host language, so results, error codes and fuel
counts match the Rust, Node and Ruby hosts exactly.
"""

from ._flow import Flow
from ._host_fn import EXTISM_USER, HostCall, HostFn, host_fn
from ._native import ERROR_CODES, CallResult, CancelToken, LogRecord, Usage, __version__
from ._pack import TRACE, Input, Pack, Source, build_info
from ._registry import pull, push
from .errors import (
    ERROR_CLASSES,
    ActionNotFound,
    Cancelled,
    HostDenied,
    HostFunctionError,
    InputTooLarge,
    Internal,
    InvalidManifest,
    InvalidOptions,
    InvalidPack,
    Io,
    MemoryLimit,
    OutOfFuel,
    OutputTooLarge,
    PackError,
    PluginError,
    QuotaExceeded,
    Timeout,
    Trap,
    UntrustedPack,
)

__all__ = [
    "Pack",
    "Flow",
    "host_fn",
    "HostFn",
    "HostCall",
    "EXTISM_USER",
    "build_info",
    "push",
    "pull",
    "CancelToken",
    "CallResult",
    "Usage",
    "LogRecord",
    "Source",
    "Input",
    "TRACE",
    "ERROR_CODES",
    "ERROR_CLASSES",
    "PackError",
    "InvalidPack",
    "InvalidManifest",
    "InvalidOptions",
    "UntrustedPack",
    "ActionNotFound",
    "Timeout",
    "OutOfFuel",
    "Cancelled",
    "MemoryLimit",
    "InputTooLarge",
    "OutputTooLarge",
    "HostDenied",
    "Trap",
    "PluginError",
    "HostFunctionError",
    "QuotaExceeded",
    "Io",
    "Internal",
    "__version__",
]
