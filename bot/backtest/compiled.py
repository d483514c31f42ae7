"""The backtest loop, compiled: an ahead-of-time module from the cache, else numba's JIT.

Importing numba costs ~0.3 s and ~130 MB, more than a whole backtest of a year of hourly candles,
so the loop is compiled once with ``numba.pycc`` into an extension module that needs only numpy
to load (~1 ms). The same module carries the compiled twins of the indicators a signal step
spends its time in (`indicator_kernel`); loading it routes `bot.market.indicators` through them
(same results bit for bit, ~4x faster). The module's name carries a hash of every source it is
built from (`kernel`, `session_model`, `risk`, `indicator_kernel`, and this file's build recipe)
and of the Python, numpy and CPU it was built for, so an edit to the money math or the risk
rules builds a new one instead of running a stale one. It is built for this CPU (as numba's JIT
would be: ~13 % faster than generic x86-64 here), so a cache shared by machines with other CPUs
holds one module per CPU rather than one that may not run.

``ALURA_BOT_KERNEL`` picks the path: ``auto`` (default: cached module, else build it, else JIT),
``aot``, ``jit`` (numba's JIT, no cache) or ``python`` (the plain source; slow, for tests and
debugging; the indicators stay numpy's). ``ALURA_BOT_CACHE_DIR`` moves the cache (default
``$XDG_CACHE_HOME/alura-bot``).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import sys
import sysconfig
import tempfile
import types
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest import indicator_kernel, kernel

KernelFn = Callable[..., int]

SIGNATURE = (
    "i8(i8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], u1[:, :, ::1], f8[:, ::1], "
    "f8[::1], i8[::1], f8[:, ::1], f8[:, ::1], f8[:, ::1], f8[::1], i8[::1])"
)
"""The one signature the loop is compiled for; callers pass C-contiguous arrays."""

CORE_NAMES = ("fee", "entry_qty", "exit_levels", "intrabar_exit", "settle", "allows_open")
INLINED = ("session_equity", "close_position")
"""Kernel helpers numba inlines into their callers. `session_equity` runs for every open session
on every candle, where a call (each array argument passed field by field) cost ~15 % of a
multi-asset run. `close_position` inlined leaves `close_all` handing its arrays to no callee,
so numba passes them to it without reference counting (atomic updates, ~4 % of a run)."""
MODES = ("auto", "aot", "jit", "python")

_loaded: dict[str, KernelFn] = {}
_loaded_twins: dict[str, dict[str, Callable[..., Any]]] = {}


class KernelUnavailable(RuntimeError):
    """The requested compiled kernel cannot be had (no numba, no C compiler, ...)."""


def cache_dir() -> Path:
    """Where compiled kernels live; per user, outside the source tree."""
    explicit = os.environ.get("ALURA_BOT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "alura-bot"


def _sources() -> list[Path]:
    from bot.engine import risk
    from bot.market import session_model

    # this file too: how the loop is compiled (what is inlined) changes the module
    modules = (kernel, session_model, risk, indicator_kernel)
    return [Path(m.__file__ or "") for m in modules] + [Path(__file__)]


def kernel_key() -> str:
    """Hash of what the compiled module is made of; any change gives a new module name."""
    digest = hashlib.sha256()
    for path in _sources():
        digest.update(path.read_bytes())
    digest.update(f"{sys.version}|{platform.machine()}|numpy {np.__version__}".encode())
    digest.update(cpu_fingerprint().encode())
    digest.update(SIGNATURE.encode())
    digest.update(repr(sorted(indicator_kernel.SIGNATURES.items())).encode())
    return digest.hexdigest()[:16]


def cpu_fingerprint() -> str:
    """What the CPU offers the compiled code (model and feature flags), read without numba."""
    wanted = ("model name", "flags", "Features", "CPU part", "CPU implementer")
    found: list[str] = []
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:  # the first processor's block is enough (and a big box has many)
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                if name.strip() in wanted:
                    found.append(value.strip())
    except OSError:
        pass
    return "|".join(found) or platform.processor()


def module_path(key: str | None = None) -> Path:
    name = f"alura_bt_{key or kernel_key()}"
    suffix = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    return cache_dir() / "kernel" / f"{name}{suffix}"


def _bind(njit: Callable[..., Any]) -> Callable[..., int]:
    """Copies of the kernel's functions whose globals name jitted versions of their callees.

    The session-model and risk functions are wrapped, not copied: `kernel` imported them by
    name, and the copies' globals point those names at ``njit(original)``. The helpers in
    `INLINED` are compiled into their callers (numba's ``inline="always"``).
    """
    namespace: dict[str, Any] = dict(vars(kernel))
    for name in CORE_NAMES:
        namespace[name] = njit(namespace[name])
    copies: dict[str, Any] = {}
    for fn in kernel.KERNEL_FUNCTIONS:
        copy = types.FunctionType(fn.__code__, namespace, fn.__name__, fn.__defaults__)
        copy.__qualname__ = fn.__qualname__
        copies[fn.__name__] = copy
    for name, copy in copies.items():
        if name in INLINED:
            namespace[name] = njit(inline="always")(copy)
        elif name != "run":
            namespace[name] = njit(copy)
    run: Callable[..., int] = copies["run"]
    return run


def _numba() -> Any:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module("numba")
    except ImportError as exc:
        raise KernelUnavailable(
            "numba is not installed (pip install numba); set ALURA_BOT_KERNEL=python to run "
            "the slow plain-Python loop"
        ) from exc


def build(path: Path | None = None) -> Path:
    """Compile the loop ahead of time into ``path`` (atomically); returns the module's path."""
    target = path or module_path()
    numba = _numba()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pycc = importlib.import_module("numba.pycc")
        run = _bind(numba.njit)
        name = target.name.split(".")[0]
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as tmp:
            cc = pycc.CC(name)
            cc.output_dir = tmp
            cc.verbose = False
            cc.target_cpu = importlib.import_module("llvmlite.binding").get_host_cpu_name()
            cc.export("run", SIGNATURE)(run)
            for twin in indicator_kernel.TWINS:
                cc.export(twin.__name__, indicator_kernel.SIGNATURES[twin.__name__])(twin)
            try:
                cc.compile()
            except Exception as exc:  # the C toolchain's errors come in many types
                raise KernelUnavailable(f"ahead-of-time build failed: {exc}") from exc
            built = next(Path(tmp).glob(f"{name}*"), None)
            if built is None:
                raise KernelUnavailable("ahead-of-time build produced no module")
            staged = target.with_name(f".{target.name}.{os.getpid()}")
            shutil.copyfile(built, staged)
            os.replace(staged, target)
    return target


def _load_module(path: Path) -> tuple[KernelFn, dict[str, Callable[..., Any]]]:
    """The module's loop and its indicator twins, by name."""
    name = path.name.split(".")[0]
    loader = importlib.machinery.ExtensionFileLoader(name, str(path))
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None:
        raise KernelUnavailable(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    try:
        fn: KernelFn = module.run
        twins = {t.__name__: getattr(module, t.__name__) for t in indicator_kernel.TWINS}
    except AttributeError as exc:
        raise KernelUnavailable(f"{path} lacks an export: {exc}") from exc
    return fn, twins


def load(mode: str | None = None, *, on_build: Callable[[Path], None] | None = None) -> KernelFn:
    """The loop for ``mode`` (default: ``ALURA_BOT_KERNEL`` or auto); cached per process.

    ``on_build`` is told before a first-time build starts (it takes ~10 s), so a CLI can say so.
    The first time a compiled mode loads, `bot.market.indicators` is routed through the compiled
    twins (`indicators.use_compiled`): from then on a strategy's signal step runs compiled in
    this process, with the same results as numpy's. ``python`` routes nothing.
    """
    wanted = _wanted(mode)
    if wanted in _loaded:
        return _loaded[wanted]
    fn: KernelFn
    twins: dict[str, Callable[..., Any]] = {}
    if wanted == "python":
        fn = kernel.run
    elif wanted == "jit":
        fn, twins = _jit()
    else:
        path = module_path()
        try:
            if not path.exists():
                if on_build is not None:
                    on_build(path)
                build(path)
            fn, twins = _load_module(path)
        except (KernelUnavailable, OSError, ImportError):
            if wanted == "aot":
                raise
            fn, twins = _jit()
    if twins:
        from bot.market import indicators

        indicators.use_compiled(twins)
    _loaded[wanted] = fn
    _loaded_twins[wanted] = twins
    return fn


def twins(mode: str | None = None) -> dict[str, Callable[..., Any]]:
    """The indicator twins that came with ``mode``'s loop (loading it), by name; none for
    ``python``, whose signal step is numpy's."""
    load(mode)
    return dict(_loaded_twins[_wanted(mode)])


def _wanted(mode: str | None) -> str:
    """``mode``, else ``ALURA_BOT_KERNEL``, else auto; refused when it is none of `MODES`."""
    wanted = (mode or os.environ.get("ALURA_BOT_KERNEL") or "auto").lower()
    if wanted not in MODES:
        raise ValueError(f"ALURA_BOT_KERNEL must be one of {', '.join(MODES)}, got {wanted!r}")
    return wanted


def _jit() -> tuple[KernelFn, dict[str, Callable[..., Any]]]:
    numba = _numba()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        jitted: KernelFn = numba.njit(_bind(numba.njit))
        # lazily typed, so read-only inputs (candle arrays) get their own specialisation
        twins = {t.__name__: numba.njit(t) for t in indicator_kernel.TWINS}
    return jitted, twins
