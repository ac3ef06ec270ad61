"""The Python runner of the shared conformance suite (tests/conformance/README.md).

Every case in every ``cases/*.json`` runs on each engine through the public ``packhost.Pack``
API and must give the outputs, error codes, logs and fuel counts the Rust runner gives; a
case with a ``kv`` option runs on each engine once per key-value backend (``memory``, then
``sqlite``). Options are handed to ``Pack`` as the dict the case holds, with only ``engine``
added and, for a ``kv`` case, ``kv.backend`` and a fresh ``kv.path`` (each unless the case
set it). A case with ``cancel_after_ms`` makes its first call with a ``packhost.CancelToken``,
cancelled before the call for 0, else by a timer thread that many milliseconds after the call
starts. A case with ``flow`` loads each of its ``flow_packs`` as a ``packhost.Pack`` the way
a case loads its pack, makes a ``packhost.Flow`` of them and runs it once on ``flow_input``.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest

import packhost
from conftest import CONFORMANCE, DIST, SUITE_FUNCTIONS, pack_path

# A flow case's own fields; it also takes options, host_functions, context and the
# expectations output_json, error and message_contains.
FLOW_FIELDS = {"flow", "flow_packs", "flow_input", "steps"}
CASE_FIELDS = {
    "name", "pack", "packs", "pack_file", "extism_manifest", "options", "actions", "then",
    "host_functions", "fuel_pinned",
    "export", "input", "input_repeat", "output", "output_json", "error",
    "message_contains", "return_code", "logs", "context", "cancel_after_ms", "host_calls",
    "kv_ops", "audit",
} | FLOW_FIELDS
CALL_FIELDS = CASE_FIELDS - FLOW_FIELDS - {
    "name", "pack", "packs", "pack_file", "extism_manifest", "options", "actions", "then",
    "host_functions", "fuel_pinned",
}
# A ``then`` step may also name a sample pack to call instead of the case's; only the
# case's first call is cancelled, so a step naming ``cancel_after_ms`` is a malformed case.
STEP_FIELDS = (CALL_FIELDS - {"cancel_after_ms"}) | {"pack"}


def load_cases() -> List[Dict[str, Any]]:
    cases = []
    for file in sorted((CONFORMANCE / "cases").glob("*.json")):
        for case in json.loads(file.read_text(encoding="utf-8"))["cases"]:
            cases.extend(one_per_pack(case))
    return cases


def one_per_pack(case: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The case, or for a case with ``packs``, one case per pack, named ``NAME/PACK``."""
    if "packs" not in case:
        return [case]
    rest = {key: value for key, value in case.items() if key != "packs"}
    return [
        {**copy.deepcopy(rest), "name": f"{case['name']}/{pack}", "pack": pack}
        for pack in case["packs"]
    ]


def expected_fuel() -> Dict[str, Dict[str, int]]:
    """fuel.json, written by the Rust runner: fuel of each successful call, by engine and
    then by case key."""
    path = CONFORMANCE / "fuel.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


CASES = load_cases()
FUEL = expected_fuel()
ENGINES = ("native", "extism")
# The key-value backends a case with a ``kv`` option runs on, in order.
KV_BACKENDS = ("memory", "sqlite")
# Numbers the fresh key-value stores of this process, so no two runs share one.
FRESH = itertools.count()


def kv_backends(case: Dict[str, Any]) -> Tuple[Optional[str], ...]:
    """Each KV backend for a case whose options hold a ``kv`` dict; else one run (``None``)."""
    options = case.get("options")
    if isinstance(options, dict) and isinstance(options.get("kv"), dict):
        return KV_BACKENDS
    return (None,)


def options_for(
    case: Dict[str, Any], engine: str, kv_backend: Optional[str], kv_folder: Path
) -> Any:
    """The case's options with ``engine`` set, unless the case chose one itself, and for a
    case with a ``kv`` option, ``kv.backend`` and a fresh ``kv.path`` (a new store name for
    ``memory``, a new file in ``kv_folder`` for ``sqlite``) unless the case chose them. The
    case itself is left as it is."""
    # A null ``options`` means defaults, as an absent one does in the Rust runner.
    options = case.get("options")
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return options
    options = {**options}
    absolute_mounts(options)
    options.setdefault("engine", engine)
    if isinstance(options.get("kv"), dict):
        fresh = next(FRESH)
        kv = {**options["kv"]}
        kv.setdefault("backend", kv_backend)
        if kv_backend == "sqlite":
            kv.setdefault("path", str(kv_folder / f"{fresh}.sqlite3"))
        else:
            kv.setdefault("path", f"conformance-{os.getpid()}-{fresh}")
        options["kv"] = kv
    return options


@pytest.fixture(scope="session")
def kv_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this session's sqlite stores."""
    return tmp_path_factory.mktemp("conformance-kv")


def test_the_suite_is_not_empty_and_names_are_unique() -> None:
    names = [case["name"] for case in CASES]
    assert names, "no conformance cases found"
    assert len(names) == len(set(names))


def test_every_error_code_has_a_python_class() -> None:
    assert set(packhost.ERROR_CLASSES) == set(packhost.ERROR_CODES)


def check_error(error: packhost.PackError, expect: Dict[str, Any]) -> List[str]:
    problems = []
    if error.code != expect["error"]:
        problems.append(f"error {error.code}: {error.message}, expected {expect['error']}")
    if not isinstance(error, packhost.ERROR_CLASSES.get(error.code, packhost.PackError)):
        problems.append(f"{type(error).__name__} is not the class of {error.code}")
    fragment = expect.get("message_contains")
    if fragment is not None and fragment not in error.message:
        problems.append(f"message {error.message!r} lacks {fragment!r}")
    if "return_code" in expect and error.return_code != expect["return_code"]:
        problems.append(f"return code {error.return_code}, expected {expect['return_code']}")
    return problems


def check_logs(logs: Any, expect: Dict[str, Any]) -> List[str]:
    if "logs" not in expect:
        return []
    actual = [{"level": record.level, "message": record.message} for record in logs]
    return [] if actual == expect["logs"] else [f"logs {actual}, expected {expect['logs']}"]


def check_fuel(fuel_consumed: int, engine: str, key: str, pinned: bool = True) -> List[str]:
    """Every successful call (or flow run) must burn what fuel.json records for it on this
    engine; a missing entry fails, as in the Rust runner, so a stale fuel.json cannot pass
    unnoticed. A case with ``fuel_pinned: false`` (a pack whose builds are not
    reproducible) has no entry and need only have burnt some fuel."""
    if not pinned:
        return [] if fuel_consumed > 0 else ["no fuel burnt"]
    wanted = FUEL.get(engine, {}).get(key)
    if wanted is None:
        return [f"no fuel.json entry for {key} on {engine} (bless with the Rust runner)"]
    if fuel_consumed != wanted:
        return [f"fuel {fuel_consumed}, expected {wanted} (fuel.json)"]
    return []


@contextlib.contextmanager
def cancelled_after(ms: Optional[int]) -> Iterator[Optional[packhost.CancelToken]]:
    """The cancel token of a call with ``cancel_after_ms``, ``None`` for one without: for 0
    cancelled already, else cancelled by a timer thread ``ms`` milliseconds after the
    ``with`` block (the call) starts."""
    if ms is None:
        yield None
        return
    token = packhost.CancelToken()
    if ms == 0:
        token.cancel()
        yield token
        return
    timer = threading.Timer(ms / 1000, token.cancel)
    timer.start()
    try:
        yield token
    finally:
        # A call that ended first leaves no timer running into the next case.
        timer.cancel()
        timer.join()


def run_call(pack: packhost.Pack, engine: str, key: str, call: Dict[str, Any],
             fuel_pinned: bool = True) -> List[str]:
    unknown = set(call) - CALL_FIELDS
    assert not unknown, f"{key}: fields this runner does not know: {sorted(unknown)}"
    export = call["export"]
    payload = (call.get("input", "") * call.get("input_repeat", 1)).encode("utf-8")
    context = call.get("context")
    try:
        with cancelled_after(call.get("cancel_after_ms")) as cancel:
            if export == "pre":
                result = pack.pre(payload, context=context, cancel=cancel)
            elif export == "post":
                result = pack.post(payload, context=context, cancel=cancel)
            else:
                result = pack.call(export, payload, context=context, cancel=cancel)
    except packhost.PackError as error:
        if "error" not in call:
            return [f"failed with {error.code}: {error.message}, expected success"]
        return (check_error(error, call) + check_logs(error.logs, call)
                + check_usage(error.usage, call) + check_audit(error.audit, call))
    if "error" in call:
        return [f"succeeded with {result.output!r}, expected error {call['error']}"]
    problems = []
    if "output" in call and result.output != call["output"].encode("utf-8"):
        problems.append(f"output {result.output!r}, expected {call['output']!r}")
    if "output_json" in call:
        try:
            actual = result.json()
        except ValueError as error:
            problems.append(f"output is not JSON ({error}): {result.output!r}")
        else:
            if actual != call["output_json"]:
                problems.append(f"output_json {actual!r}, expected {call['output_json']!r}")
    return (problems + check_logs(result.logs, call)
            + check_fuel(result.usage.fuel_consumed, engine, key, fuel_pinned)
            + check_usage(result.usage, call) + check_audit(result.audit, call))


def run_flow(case: Dict[str, Any], engine: str, options: Any) -> List[str]:
    """A flow case: its ``flow_packs`` loaded as a case's pack is, the flow made with them and
    run once; on success its output, steps' statuses, contexts and total fuel checked."""
    functions = SUITE_FUNCTIONS if case.get("host_functions") else None
    packs = {name: packhost.Pack(pack_path(sample), options, functions=functions)
             for name, sample in case["flow_packs"].items()}
    context = case.get("context")
    try:
        result = packhost.Flow(case["flow"], packs).run(case.get("flow_input"), context=context)
    except packhost.PackError as error:
        if "error" not in case:
            return [f"failed with {error.code}: {error.message}, expected success"]
        return check_error(error, case)
    if "error" in case:
        return [f"succeeded with {result['output']!r}, expected error {case['error']}"]
    problems = []
    if "output_json" in case and result["output"] != case["output_json"]:
        problems.append(f"output_json {result['output']!r}, expected {case['output_json']!r}")
    steps = [{"id": step["id"], "status": step["status"]} for step in result["steps"]]
    if "steps" in case and steps != case["steps"]:
        problems.append(f"steps {steps}, expected {case['steps']}")
    contexts = [result["usage"]["context"]] + [
        step["usage"]["context"] for step in result["steps"] if step["usage"] is not None
    ]
    problems += [f"usage context {c!r}, expected {context!r}" for c in contexts if c != context]
    return problems + check_fuel(result["usage"]["fuel_consumed"], engine, case["name"],
                                 case.get("fuel_pinned", True))


def check_usage(usage: Any, expect: Dict[str, Any]) -> List[str]:
    """``host_calls`` and ``kv_ops`` when the case gives them; and every usage records the
    call's context."""
    problems = []
    if "host_calls" in expect:
        actual = None if usage is None else usage.host_calls
        if actual != expect["host_calls"]:
            problems.append(f"host calls {actual}, expected {expect['host_calls']}")
    if "kv_ops" in expect:
        actual = None if usage is None else usage.kv_ops
        if actual != expect["kv_ops"]:
            problems.append(f"kv ops {actual}, expected {expect['kv_ops']}")
    if usage is not None and usage.context != expect.get("context"):
        problems.append(f"usage context {usage.context!r}, expected {expect.get('context')!r}")
    return problems


def check_audit(audit: List[Dict[str, Any]], expect: Dict[str, Any]) -> List[str]:
    """``audit`` when the case gives it: the call's trail has as many entries as the list,
    and each entry holds every key its expected counterpart names, with that value (keys
    the case leaves out are not checked)."""
    if "audit" not in expect:
        return []
    wanted = expect["audit"]
    matches = len(audit) == len(wanted) and all(
        all(key in entry and entry[key] == value for key, value in want.items())
        for entry, want in zip(audit, wanted)
    )
    return [] if matches else [f"audit {audit}, expected {wanted}"]


def absolute_mounts(holder: Dict[str, Any]) -> None:
    """Makes each host path of ``holder["allowed_paths"]`` (after an optional ``ro:``)
    absolute, reading it relative to the conformance folder."""
    paths = holder.get("allowed_paths")
    if not isinstance(paths, dict):
        return
    mounts = {}
    for source, guest in paths.items():
        prefix = "ro:" if source.startswith("ro:") else ""
        mounts[prefix + str(CONFORMANCE / source[len(prefix):])] = guest
    holder["allowed_paths"] = mounts


def source(case: Dict[str, Any]) -> Any:
    """The case's pack: a path, or its Extism manifest with each ``wasm[].path`` taken as a
    file in ``plugins/dist/`` and its ``allowed_paths`` made absolute."""
    given = [key for key in ("pack", "pack_file", "extism_manifest") if key in case]
    if len(given) != 1:
        pytest.fail(f"{case['name']}: give exactly one of pack, pack_file and extism_manifest")
    if "pack" in case:
        return pack_path(case["pack"])
    if "pack_file" in case:
        return CONFORMANCE / case["pack_file"]
    manifest = copy.deepcopy(case["extism_manifest"])
    absolute_mounts(manifest)
    for module in manifest.get("wasm", []):
        if "path" in module:
            module["path"] = str(DIST / module["path"])
    return manifest


def runs() -> List[Any]:
    """Every case on each engine, and a ``kv`` case on each backend too, labelled as the
    Rust runner reports them: ``NAME [ENGINE]`` or ``NAME [ENGINE, kv BACKEND]``."""
    params = []
    for case in CASES:
        for engine in ENGINES:
            for backend in kv_backends(case):
                label = engine if backend is None else f"{engine}, kv {backend}"
                params.append(pytest.param(case, engine, backend, id=f"{case['name']} [{label}]"))
    return params


@pytest.mark.parametrize(("case", "engine", "kv_backend"), runs())
def test_conformance(
    case: Dict[str, Any], engine: str, kv_backend: Optional[str], kv_folder: Path
) -> None:
    unknown = set(case) - CASE_FIELDS
    assert not unknown, f"fields this runner does not know: {sorted(unknown)}"
    # One options dict for the case's pack and any pack a ``then`` step names, so they
    # share the key-value store.
    options = options_for(case, engine, kv_backend, kv_folder)
    if "flow" in case:
        problems = run_flow(case, engine, options)
        assert not problems, "\n".join(problems)
        return
    try:
        functions = SUITE_FUNCTIONS if case.get("host_functions") else None
        pack = packhost.Pack(source(case), options, functions=functions)
    except packhost.PackError as error:
        assert "error" in case, f"load failed with {error.code}: {error.message}"
        problems = check_error(error, case)
        assert not problems, problems
        return
    problems = []
    if "actions" in case and pack.actions != case["actions"]:
        problems.append(f"actions {pack.actions}, expected {case['actions']}")
    if "export" in case:
        problems += run_call(pack, engine, case["name"],
                             {k: v for k, v in case.items() if k in CALL_FIELDS},
                             case.get("fuel_pinned", True))
    elif "error" in case:
        problems.append(f"loaded, expected error {case['error']}")
    for index, step in enumerate(case.get("then", [])):
        key = f"{case['name']}/then/{index}"
        unknown = set(step) - STEP_FIELDS
        assert not unknown, f"{key}: fields this runner does not know: {sorted(unknown)}"
        target = pack
        if "pack" in step:
            # Another sample pack, loaded with the case's options and no host functions.
            try:
                target = packhost.Pack(pack_path(step["pack"]), options)
            except packhost.PackError as error:
                problems.append(f"then[{index}]: loading {step['pack']!r} failed with "
                                f"{error.code}: {error.message}")
                continue
        call = {k: v for k, v in step.items() if k != "pack"}
        problems += [f"then[{index}]: {p}"
                     for p in run_call(target, engine, key, call, case.get("fuel_pinned", True))]
    assert not problems, "\n".join(problems)
