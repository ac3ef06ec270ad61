"""``packhost.Pack``: load a pack, call it (blocking or async), forward its log lines.

Everything here is conversion: options become JSON for the core, inputs become bytes, the
pack's log records become ``logging`` records. Limits, defaults and validation belong to the
Rust core, so a new core option works here without a change.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from ._host_fn import Functions, native_functions
from ._native import CallResult, CancelToken, LogRecord, NativePack, build_info_json
from .errors import InvalidOptions, PackError

__all__ = ["Pack", "Source", "Input", "build_info"]

Source = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Mapping[str, Any]]
"""Where a pack comes from: a path to a ``.wasm`` file, the module's bytes, or an Extism
manifest naming the module."""

Input = Any
"""A call input: ``bytes``, ``str`` (sent as UTF-8), or any JSON-serialisable object."""


def build_info() -> Dict[str, Any]:
    """How the native module was built: version, cargo profile, optimisation level, whether
    debug assertions are on, and the wasmtime version. An installed wheel reports
    ``profile == "release"`` and ``debug_assertions is False``."""
    info: Dict[str, Any] = json.loads(build_info_json())
    return info


# A library leaves output to the application (the logging HOWTO's advice): without this,
# Python's last-resort handler would print a pack's warnings to stderr unasked.
logging.getLogger("packhost").addHandler(logging.NullHandler())

# Python's logging has no level below DEBUG; plugin "trace" lines sit just under it.
TRACE = logging.DEBUG - 5

_LOGGING_LEVELS = {
    "trace": TRACE,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warn": logging.WARNING,
    "error": logging.ERROR,
}


class Pack:
    """A loaded pack, safe to share between threads and coroutines.

    ``Pack(source, options=None, **fields)`` loads from a path, from bytes, or from an
    Extism manifest (a dict: ``{"wasm": [{"path": ...}], "config": ...}``). Options are the
    core's ``PackOptions`` as a dict, keyword arguments, or both (for different keys), e.g.
    ``Pack("text_tools.wasm", limits={"timeout_ms": 250}, config={"greeting": "Hi"})``.
    Unknown or mistyped options raise :class:`packhost.InvalidOptions`. ``functions`` lends
    the pack host functions (``{name: handler}``, or ``@packhost.host_fn`` functions); a
    pack that imports one the host did not lend fails to load with ``InvalidPack``.

    Calls release the GIL while the pack runs, so threads calling one pack run in parallel;
    only calls the core expects to take a few microseconds keep it (handing it over would
    cost more), and release it should one run past a millisecond. A host function's handler
    runs holding the GIL. The pack's log lines go to the logger
    ``packhost.plugin.<pack name>`` after each call, at their level (``trace`` maps to level
    5, below ``DEBUG``).
    """

    __slots__ = ("_native", "_logger", "_manifest")

    def __init__(
        self,
        source: Source,
        /,
        options: Optional[Mapping[str, Any]] = None,
        *,
        functions: Optional[Functions] = None,
        **fields: Any,
    ) -> None:
        options_json = _options_json(options, fields)
        lent = native_functions(functions)
        if isinstance(source, (bytes, bytearray, memoryview)):
            self._native = NativePack.load_bytes(bytes(source), options_json, lent)
        elif isinstance(source, (str, os.PathLike)):
            self._native = NativePack.load_file(os.fspath(source), options_json, lent)
        elif isinstance(source, Mapping):
            # Paths (pathlib) in a manifest become their text, as Extism's SDK takes them.
            manifest_json = json.dumps(dict(source), default=os.fspath)
            self._native = NativePack.load_extism_manifest(manifest_json, options_json, lent)
        else:
            raise TypeError(
                "source must be a path, bytes or an Extism manifest (dict), "
                f"not {type(source).__name__}"
            )
        self._logger = logging.getLogger(f"packhost.plugin.{self._native.name}")
        self._manifest: Optional[Dict[str, Any]] = None

    def reload(self, source: Union[str, "os.PathLike[str]", bytes, bytearray, memoryview]) -> "Pack":
        """Swaps in the next version of this pack (a path, an ``oci://`` reference or the
        module's bytes), loaded with the same options and host functions.

        Calls already running finish on the old version; every later call gets the new one.
        When it does not load, or is another pack, the error (e.g. ``InvalidPack``) is raised
        and the old version stays. Loading releases the GIL. Returns this pack.
        """
        if isinstance(source, (bytes, bytearray, memoryview)):
            native = self._native.load_next_bytes(bytes(source))
        elif isinstance(source, (str, os.PathLike)):
            native = self._native.load_next_file(os.fspath(source))
        else:
            raise TypeError(f"reload takes a path or bytes, not {type(source).__name__}")
        # One assignment: a call sees the old native pack or the new one, never a mix.
        self._native = native
        self._manifest = None
        self._logger = logging.getLogger(f"packhost.plugin.{native.name}")
        return self

    @property
    def id(self) -> str:
        """The SHA-256 of the module bytes, in lowercase hex: the pack's identity."""
        return self._native.id

    @property
    def name(self) -> str:
        """The pack's name from its manifest (the file name when it has none)."""
        return self._native.name

    @property
    def version(self) -> str:
        """The pack's version from its manifest."""
        return self._native.version

    @property
    def actions(self) -> List[str]:
        """Names of the actions the pack can be called with, ``pre`` and ``post`` included."""
        return self._native.actions

    @property
    def manifest(self) -> Dict[str, Any]:
        """The pack's manifest as plain data (synthesized from its exports if it has none)."""
        if self._manifest is None:
            self._manifest = json.loads(self._native.manifest_json())
        return self._manifest

    @property
    def options(self) -> Dict[str, Any]:
        """The options in force, with the core's defaults filled in."""
        options: Dict[str, Any] = json.loads(self._native.options_json())
        return options

    def stats(self) -> Dict[str, Any]:
        """Counts and totals of this pack's calls since it was loaded, as a fresh dict:
        ``calls`` (failed ones included), ``errors`` (``{code: count}`` of the failed ones),
        and the sums of the calls' usage ``wall_time_us``, ``fuel_consumed``,
        ``input_bytes``, ``output_bytes``, ``host_calls``, ``kv_ops``, ``http_requests``,
        ``http_bytes_sent`` and ``http_bytes_received``. A call refused before the pack ran (an
        unknown action, an oversized input) is not counted."""
        stats: Dict[str, Any] = json.loads(self._native.stats_json())
        return stats

    def call(
        self,
        action: str,
        input: Input = b"",
        *,
        context: Any = None,
        cancel: Optional[CancelToken] = None,
    ) -> CallResult:
        """Runs ``action`` on ``input`` and returns its output, usage, logs and audit trail.

        ``context`` (any JSON-serialisable value: a tenant, a request id) reaches every host
        function the call makes, as ``HostCall.context``. ``cancel`` (a
        :class:`packhost.CancelToken`) lets another thread stop the call: once the token is
        cancelled the call ends with :class:`packhost.Cancelled` (within about a millisecond
        on the native engine, a WASI sleep included), and a call given a token already
        cancelled does not run.

        Raises a :class:`packhost.PackError` subclass on failure (``Timeout``, ``OutOfFuel``,
        ``Cancelled``, ``PluginError``, ``HostFunctionError``, ...); the error carries the
        call's ``usage``, ``logs`` and ``audit``.
        """
        if not isinstance(input, (bytes, str)):
            input = _payload(input)
        call_options = None if context is None else _call_options_json(context)
        try:
            result = self._native.call(action, input, call_options, cancel)
        except PackError as error:
            if error.logs:
                self._forward_logs(action, error.logs)
            raise
        if result.logs:
            self._forward_logs(action, result.logs)
        return result

    def pre(
        self, input: Input = b"", *, context: Any = None, cancel: Optional[CancelToken] = None
    ) -> CallResult:
        """Runs the pack's ``pre`` hook (by convention over an outgoing request as JSON)."""
        return self.call("pre", input, context=context, cancel=cancel)

    def post(
        self, input: Input = b"", *, context: Any = None, cancel: Optional[CancelToken] = None
    ) -> CallResult:
        """Runs the pack's ``post`` hook (by convention over a response as JSON)."""
        return self.call("post", input, context=context, cancel=cancel)

    async def acall(
        self,
        action: str,
        input: Input = b"",
        *,
        context: Any = None,
        cancel: Optional[CancelToken] = None,
    ) -> CallResult:
        """:meth:`call` on a worker thread, leaving the event loop free meanwhile.

        Cancelling the awaiting task (``task.cancel()``, ``asyncio.wait_for`` running out)
        stops the pack too: the call's token is cancelled, so the call on the worker thread
        ends with ``Cancelled`` while the task gets ``asyncio.CancelledError``. The token is
        ``cancel`` when given (so every other call made with it is cancelled as well), else
        one made for this call. Host functions run on the worker thread too.
        """
        return await self._in_thread(action, input, context, cancel)

    async def apre(
        self, input: Input = b"", *, context: Any = None, cancel: Optional[CancelToken] = None
    ) -> CallResult:
        """:meth:`pre` on a worker thread, stopped as :meth:`acall` is when cancelled."""
        return await self._in_thread("pre", input, context, cancel)

    async def apost(
        self, input: Input = b"", *, context: Any = None, cancel: Optional[CancelToken] = None
    ) -> CallResult:
        """:meth:`post` on a worker thread, stopped as :meth:`acall` is when cancelled."""
        return await self._in_thread("post", input, context, cancel)

    async def _in_thread(
        self, action: str, input: Input, context: Any, cancel: Optional[CancelToken]
    ) -> CallResult:
        # The token must exist before the call starts: a call reads it only at its start.
        token = CancelToken() if cancel is None else cancel
        try:
            return await asyncio.to_thread(
                self.call, action, input, context=context, cancel=token
            )
        except asyncio.CancelledError:
            # Without this the worker thread would run the pack on to its time limit, still
            # holding an instance and a core, for a result nobody awaits any more.
            token.cancel()
            raise

    def _forward_logs(self, action: str, records: Sequence[LogRecord]) -> None:
        forward_logs(
            self._logger,
            self._native.name,
            action,
            ((record.level, record.message) for record in records),
        )

    def __repr__(self) -> str:
        return f"<packhost.Pack {self.name} {self.version} id={self.id[:12]}>"


def forward_logs(
    logger: logging.Logger, pack_name: str, action: str, records: Iterable[Tuple[str, str]]
) -> None:
    """Sends a call's log lines, ``(level, message)`` pairs, to ``logger`` at their level."""
    extra = {"packhost_pack": pack_name, "packhost_action": action}
    for level_name, message in records:
        level = _LOGGING_LEVELS.get(level_name, logging.INFO)
        if logger.isEnabledFor(level):
            logger.log(level, "%s", message, extra=extra)


def _options_json(options: Optional[Mapping[str, Any]], fields: Mapping[str, Any]) -> str:
    """The options as JSON text for the core; keyword fields join the dict's keys."""
    merged: Dict[str, Any] = dict(options) if options is not None else {}
    clashes = sorted(set(merged) & set(fields))
    if clashes:
        raise TypeError(f"options given both in the dict and as keywords: {clashes}")
    merged.update(fields)
    try:
        return json.dumps(merged)
    except (TypeError, ValueError) as error:
        raise InvalidOptions(
            f"options must be JSON-serialisable: {error}"
        ) from error


def _call_options_json(context: Any) -> str:
    """Call options as JSON text for the core."""
    try:
        return json.dumps({"context": context})
    except (TypeError, ValueError) as error:
        raise InvalidOptions(f"context must be JSON-serialisable: {error}") from error


def _payload(input: Input) -> Union[bytes, str]:
    """The input as ``bytes`` or ``str``; other objects are sent as compact JSON."""
    if isinstance(input, (bytes, str)):
        return input
    if isinstance(input, (bytearray, memoryview)):
        return bytes(input)
    return json.dumps(input, separators=(",", ":"), ensure_ascii=False)
