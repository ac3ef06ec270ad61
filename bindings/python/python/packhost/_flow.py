"""``packhost.Flow``: packs' actions composed as data and run as one call.

Everything here is conversion: the definition and the input become JSON for the core, the
result comes back as a dict, and each call's log lines go to ``logging`` as ``Pack.call``
sends them. Reading, checking and running the definition belong to the Rust core.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Dict, List, Mapping, Optional, Tuple, Union

from ._native import CancelToken, NativeFlow, NativePack
from ._pack import Pack, _call_options_json, forward_logs
from .errors import InvalidOptions, PackError

__all__ = ["Flow", "Definition"]

Definition = Union[str, Mapping[str, Any]]
"""A flow definition: the JSON object as a dict, or its JSON text."""


class Flow:
    """A flow: steps that each call an action of a pack, their inputs taken from the flow's
    input and earlier steps' outputs, run as one call. Safe to share between threads.

    ``Flow(definition, packs)`` reads the definition (a dict or JSON text: ``{"name",
    "description"?, "timeout_ms"?, "steps", "output"?}``) and binds it to ``packs``, a dict of
    the pack names its steps give to loaded :class:`packhost.Pack` objects. The definition is
    checked whole here: a malformed definition, a pack it names missing from ``packs``, or a
    value of the wrong type raises :class:`packhost.InvalidOptions`; an action a pack lacks
    raises :class:`packhost.ActionNotFound`.

    A pack swapped with :meth:`Pack.reload` serves the flow's later runs in its new version
    (the flow is checked against it again first); runs already going finish on the old one.
    """

    __slots__ = ("_definition_json", "_packs", "_bound")

    def __init__(self, definition: Definition, packs: Mapping[str, Pack]) -> None:
        self._definition_json = _definition_json(definition)
        self._packs = _checked_packs(packs)
        self._bound = self._bind(tuple(pack._native for pack in self._packs.values()))

    @property
    def name(self) -> str:
        """The flow's name, from its definition."""
        return self._bound[1].name

    def run(
        self,
        input: Any = None,
        *,
        context: Any = None,
        cancel: Optional[CancelToken] = None,
    ) -> Dict[str, Any]:
        """Runs the flow on ``input`` (any JSON-serialisable value; ``None`` is null) and
        returns the result as a dict: ``output`` (the definition's ``output`` filled in, else
        the output of the last top-level step that ran), ``steps`` (one dict per step, in
        the definition's order: ``id``, ``pack``, ``action``, ``status`` (``"ok"`` or ``"skipped"``),
        ``usage`` (a dict like ``Usage.as_dict()``, ``None`` when skipped), ``logs`` and
        ``audit``) and ``usage`` (the run's totals, with ``steps_run``, ``steps_skipped``
        and ``context``).

        ``context`` reaches every step's call as ``Pack.call``'s does. ``cancel`` (a
        :class:`packhost.CancelToken`) lets another thread stop the whole run: it ends with
        :class:`packhost.Cancelled`. The run releases the GIL while the steps run.

        Raises the error class of the first failing step's call (``Timeout`` when a step's
        ``timeout_ms`` or the flow's deadline ended it, ``PluginError``, ...), its message
        naming the flow and the step and its ``usage``, ``logs`` and ``audit`` those of the
        failed call; ``InvalidOptions`` when a pointer without ``default`` finds no value.
        """
        input_json = _json_text("input", input)
        call_options = None if context is None else _call_options_json(context)
        native = self._current()
        try:
            result_json = native.run(input_json, call_options, cancel)
        except PackError as error:
            if error.logs and error.usage is not None:
                _forward_logs(
                    error.usage.pack_name,
                    error.usage.action,
                    [(record.level, record.message) for record in error.logs],
                )
            raise
        result: Dict[str, Any] = json.loads(result_json)
        for step in result["steps"]:
            if step["logs"] and step["usage"] is not None:
                _forward_logs(
                    step["usage"]["pack_name"],
                    step["action"],
                    [(record["level"], record["message"]) for record in step["logs"]],
                )
        return result

    def _current(self) -> NativeFlow:
        """The native flow bound to the packs' current versions, bound again when one of them
        was reloaded since."""
        natives = tuple(pack._native for pack in self._packs.values())
        bound_to, native = self._bound
        if all(now is then for now, then in zip(natives, bound_to)):
            return native
        # One assignment: a run sees the old binding or the new one, never a mix.
        self._bound = self._bind(natives)
        return self._bound[1]

    def _bind(self, natives: Tuple[NativePack, ...]) -> Tuple[Tuple[NativePack, ...], NativeFlow]:
        pairs: List[Tuple[str, NativePack]] = list(zip(self._packs, natives))
        return natives, NativeFlow.from_json(self._definition_json, pairs)

    def __repr__(self) -> str:
        return f"<packhost.Flow {self.name} packs={sorted(self._packs)}>"


def _definition_json(definition: Definition) -> str:
    """The definition as JSON text for the core."""
    if isinstance(definition, str):
        return definition
    if not isinstance(definition, Mapping):
        raise InvalidOptions(
            f"a flow definition must be a dict or JSON text, not {type(definition).__name__}"
        )
    return _json_text("the flow definition", dict(definition))


def _checked_packs(packs: Mapping[str, Pack]) -> Dict[str, Pack]:
    """``packs`` as a new dict, every key a name and every value a :class:`Pack`."""
    if not isinstance(packs, Mapping):
        raise InvalidOptions(
            f"a flow's packs must be a dict of names to packhost.Pack, not {type(packs).__name__}"
        )
    checked: Dict[str, Pack] = {}
    for name, pack in packs.items():
        if not isinstance(name, str):
            raise InvalidOptions(f"a flow's pack names must be str, not {type(name).__name__}")
        if not isinstance(pack, Pack):
            raise InvalidOptions(
                f"the flow's pack {name!r} must be a packhost.Pack, not {type(pack).__name__}"
            )
        checked[name] = pack
    return checked


def _json_text(what: str, value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError) as error:
        raise InvalidOptions(f"{what} must be JSON-serialisable: {error}") from error


def _forward_logs(pack_name: str, action: str, records: List[Tuple[str, str]]) -> None:
    """A step's log lines to the logger ``Pack.call`` sends its pack's lines to."""
    forward_logs(logging.getLogger(f"packhost.plugin.{pack_name}"), pack_name, action, records)
