"""Type stubs for ``packhost._native``, the Rust half of the package (bindings/python/src).

Hand-written; ``tests/test_stubs.py`` runs mypy's stubtest to keep them in step with the
compiled module.
"""

from typing import Any, Callable, Dict, List, Optional, Tuple, final

__all__ = [
    "NativePack",
    "NativeFlow",
    "CancelToken",
    "CallResult",
    "Usage",
    "LogRecord",
    "ERROR_CODES",
    "__version__",
    "build_info_json",
    "push_json",
    "pull_json",
    "_panic_for_tests",
]

ERROR_CODES: Tuple[str, ...]
__version__: str

def build_info_json() -> str: ...
def push_json(path: str, reference: str, signature: Optional[str] = None) -> str: ...
def pull_json(reference: str) -> str: ...
def _panic_for_tests(message: str) -> None: ...

@final
class NativePack:
    @staticmethod
    def load_bytes(
        data: bytes,
        options_json: str,
        functions: List[Tuple[str, str, Callable[[bytes, Optional[str], str, str, str], bytes]]] = ...,
    ) -> NativePack: ...
    @staticmethod
    def load_file(
        path: str,
        options_json: str,
        functions: List[Tuple[str, str, Callable[[bytes, Optional[str], str, str, str], bytes]]] = ...,
    ) -> NativePack: ...
    @staticmethod
    def load_extism_manifest(
        manifest_json: str,
        options_json: str,
        functions: List[Tuple[str, str, Callable[[bytes, Optional[str], str, str, str], bytes]]] = ...,
    ) -> NativePack: ...
    def load_next_bytes(self, data: bytes) -> NativePack: ...
    def load_next_file(self, path: str) -> NativePack: ...
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str: ...
    @property
    def actions(self) -> List[str]: ...
    @property
    def has_embedded_manifest(self) -> bool: ...
    def manifest_json(self) -> str: ...
    def options_json(self) -> str: ...
    def stats_json(self) -> str: ...
    def call(
        self,
        action: str,
        input: bytes | str,
        call_options_json: Optional[str] = None,
        cancel: Optional[CancelToken] = None,
    ) -> CallResult: ...

@final
class NativeFlow:
    """A checked flow bound to the packs its steps call (``packhost.Flow`` wraps it)."""

    @staticmethod
    def from_json(definition_json: str, packs: List[Tuple[str, NativePack]]) -> NativeFlow:
        """Reads a definition from JSON text and checks it against ``(name, pack)`` pairs."""
    @property
    def name(self) -> str:
        """The flow's name, from its definition."""
    def run(
        self,
        input_json: str,
        call_options_json: Optional[str] = None,
        cancel: Optional[CancelToken] = None,
    ) -> str:
        """Runs the flow on JSON text without the GIL; the result (``output``, ``steps``,
        ``usage``) as JSON text."""

# `CancelToken()` takes no arguments, as object's inherited constructor says: none declared.
@final
class CancelToken:
    """Cancels the calls made with it (``Pack.call(..., cancel=token)``): each one running
    ends with ``packhost.Cancelled`` at its engine's next check (a millisecond on the native
    engine), and one started after ``cancel()`` does not run. ``cancel()`` may be called
    from any thread; a cancelled token stays cancelled."""

    def cancel(self) -> None:
        """Cancels every call running with this token and every later call made with it."""
    @property
    def cancelled(self) -> bool:
        """Whether ``cancel()`` has been called."""

@final
class CallResult:
    """The result of a successful call: output, usage, logs and audit trail."""

    @property
    def output(self) -> bytes:
        """The bytes the pack returned."""
    @property
    def text(self) -> str:
        """The output decoded as UTF-8; raises ``UnicodeDecodeError`` when it is not text."""
    def json(self) -> Any:
        """The output parsed as JSON."""
    @property
    def usage(self) -> Usage:
        """What the call cost."""
    @property
    def logs(self) -> Tuple[LogRecord, ...]:
        """What the pack logged, in order."""
    @property
    def audit(self) -> List[Dict[str, Any]]:
        """Every capability the pack used (HTTP, key-value, secrets, host functions),
        refusals included, in order: a fresh list of plain dicts each time, with the keys
        ``capability`` (``"http"``, ``"kv"``, ``"secret"`` or ``"host_function"``),
        ``operation``, ``target``, ``outcome`` (``"ok"``, ``"denied"`` or ``"failed"``),
        ``status`` (when set), ``bytes_sent``, ``bytes_received`` and ``reason`` (when set)."""
    def __bytes__(self) -> bytes: ...

@final
class Usage:
    """The cost of one call, as the core measured it, and the context it was for."""

    @property
    def wall_time_us(self) -> int: ...
    @property
    def fuel_consumed(self) -> int: ...
    @property
    def peak_memory_bytes(self) -> int: ...
    @property
    def input_bytes(self) -> int: ...
    @property
    def output_bytes(self) -> int: ...
    @property
    def host_calls(self) -> int: ...
    @property
    def host_time_us(self) -> int: ...
    @property
    def kv_ops(self) -> int: ...
    @property
    def http_requests(self) -> int:
        """HTTP requests the pack made, refused ones included."""
    @property
    def http_bytes_sent(self) -> int:
        """Bytes of HTTP request bodies the pack sent."""
    @property
    def http_bytes_received(self) -> int:
        """Bytes of HTTP response bodies the pack received."""
    @property
    def context(self) -> Any:
        """The ``context`` the call was made with (parsed from JSON), ``None`` when none."""
    @property
    def pack_name(self) -> str:
        """The pack's name, from its manifest."""
    @property
    def pack_version(self) -> str:
        """The pack's version, from its manifest."""
    @property
    def pack_id(self) -> str:
        """The pack's id: the SHA-256 of its module, in lowercase hex."""
    @property
    def action(self) -> str:
        """The action called."""
    def as_dict(self) -> Dict[str, Any]: ...

@final
class LogRecord:
    """One line a pack logged."""

    @property
    def level(self) -> str:
        """``"trace"``, ``"debug"``, ``"info"``, ``"warn"`` or ``"error"``."""
    @property
    def message(self) -> str: ...
