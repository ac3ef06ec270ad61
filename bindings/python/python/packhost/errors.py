"""The packhost exception hierarchy: one class per core error code, declared only here.

The native module raises these by looking the class up in ``ERROR_CLASSES`` by the core's
stable code, so ``except packhost.Timeout`` and ``err.code == "timeout"`` always agree with
what the Rust, Node and Ruby hosts report for the same failure.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Type,
)

if TYPE_CHECKING:
    from ._native import LogRecord, Usage

__all__ = [
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
    "ERROR_CLASSES",
]


class PackError(Exception):
    """Base class of every packhost failure.

    Attributes:
        code: the stable snake_case code, e.g. ``"timeout"``; match on this or the class,
            never on the message.
        message: the explanation for people (for ``plugin_error``, the pack's own message).
        usage: what the failed call cost, for failures during a call; else ``None``.
        logs: what the pack logged before failing (empty outside calls).
        audit: every capability the failed call used (HTTP, key-value, secrets, host
            functions), refusals included, in order, as plain dicts like
            ``CallResult.audit``'s (an empty list outside calls).
        return_code: the pack's non-zero return code, for ``plugin_error``; else ``None``.
    """

    code: ClassVar[str] = "internal"

    def __init__(
        self,
        message: str,
        *,
        code: Optional[str] = None,
        usage: Optional[Usage] = None,
        logs: Sequence[LogRecord] = (),
        audit: Sequence[Dict[str, Any]] = (),
        return_code: Optional[int] = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        # An instance attribute only when the core sent a code this package has no class
        # for yet (a newer core); otherwise the class attribute answers.
        if code is not None and code != type(self).code:
            self.code = code  # type: ignore[misc]
        self.usage = usage
        self.logs: Tuple[LogRecord, ...] = tuple(logs)
        self.audit: List[Dict[str, Any]] = list(audit)
        self.return_code = return_code


class InvalidPack(PackError):
    """The bytes are not a module packhost can run (malformed, or with unknown imports)."""

    code = "invalid_pack"


class InvalidManifest(PackError):
    """The pack's embedded manifest is malformed or contradicts the module."""

    code = "invalid_manifest"


class InvalidOptions(PackError):
    """The load options were rejected (unknown field, wrong type, bad host pattern)."""

    code = "invalid_options"


class UntrustedPack(PackError):
    """The trust policy (``trusted_keys``, ``require_signature``) refused the pack: unsigned
    where a signature is required, or signed wrongly or by a key the host does not trust."""

    code = "untrusted_pack"


class ActionNotFound(PackError):
    """The pack has no action of that name."""

    code = "action_not_found"


class Timeout(PackError):
    """The call ran past ``limits.timeout_ms``."""

    code = "timeout"


class OutOfFuel(PackError):
    """The call used up ``limits.fuel``, its instruction budget."""

    code = "out_of_fuel"


class Cancelled(PackError):
    """The host cancelled the call through its :class:`packhost.CancelToken`. Like
    ``Timeout``, a call stopped while running carries its ``usage`` and ``logs``; a call
    started with a token already cancelled never ran and has none."""

    code = "cancelled"


class MemoryLimit(PackError):
    """The pack tried to grow its memory past ``limits.memory_bytes``."""

    code = "memory_limit"


class InputTooLarge(PackError):
    """The input exceeds ``limits.max_input_bytes``; the pack was not called."""

    code = "input_too_large"


class OutputTooLarge(PackError):
    """The pack returned more than ``limits.max_output_bytes``."""

    code = "output_too_large"


class HostDenied(PackError):
    """The pack used a capability it was not granted, such as an HTTP host."""

    code = "host_denied"


class Trap(PackError):
    """The pack trapped: ``unreachable``, a stack overflow, an out-of-bounds access."""

    code = "trap"


class PluginError(PackError):
    """The pack reported an error of its own; see ``message`` and ``return_code``."""

    code = "plugin_error"


class HostFunctionError(PackError):
    """A host function the pack called failed: its handler raised or returned the wrong
    type. The pack was not resumed. The handler's exception is this one's ``__cause__``.

    Attributes:
        function: the host function's import name.
        error_class: the class name of the exception the handler raised.
    """

    code = "host_function_error"

    def __init__(
        self,
        message: str,
        *,
        function: Optional[str] = None,
        error_class: Optional[str] = None,
        **details: Any,
    ) -> None:
        super().__init__(message, **details)
        self.function = function
        self.error_class = error_class


class QuotaExceeded(PackError):
    """The pack went past a quota of a capability: a key or value too large, a tenant's
    storage full, too many operations in one call."""

    code = "quota_exceeded"


class Io(PackError):
    """Reading the pack failed (its file, or a registry that cannot be reached, refuses the
    credentials or lacks the reference), or a capability's storage did."""

    code = "io"


class Internal(PackError):
    """A fault inside packhost itself (including a caught panic): please report it."""

    code = "internal"


ERROR_CLASSES: Mapping[str, Type[PackError]] = MappingProxyType(
    {
        cls.code: cls
        for cls in (
            InvalidPack,
            InvalidManifest,
            InvalidOptions,
            UntrustedPack,
            ActionNotFound,
            Timeout,
            OutOfFuel,
            Cancelled,
            MemoryLimit,
            InputTooLarge,
            OutputTooLarge,
            HostDenied,
            Trap,
            PluginError,
            HostFunctionError,
            QuotaExceeded,
            Io,
            Internal,
        )
    }
)
"""The exception class of each core error code; the native module raises through this."""
