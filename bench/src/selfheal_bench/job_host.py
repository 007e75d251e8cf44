"""A job host's process forked from a server that has already imported the job scripts' libraries.

A fresh interpreter spends about 1.3 s of CPU importing numpy, pandas, scikit-learn, pyarrow and XGBoost before a job
script of ml/ does anything, and most of a job here is that (a backtest runs hundreds of jobs). A SageMaker container
pays it too, on an instance of its own; here every job shares two cores. So a job whose command is the project's
Python on a script (`python script.py args`) or a module (`python -m module args`) is forked from a server
(multiprocessing's forkserver, started once per local-cloud process) that imported those libraries once; the child
then becomes the job's process as a fresh interpreter would be (docs/aws-contract.md, "Job processes"):
- its environment is the container's, built from nothing (os.environ cleared, then the job's; the C environment too),
  its argv, its working directory, its log as stdout and stderr (line-buffered; unbuffered with PYTHONUNBUFFERED);
- sys.path is a fresh interpreter's: the script's folder (the working directory for -m), PYTHONPATH, then the
  interpreter's own site path; `sitecustomize` is run from that path, as site.py would;
- the script runs as `__main__` (runpy, as `python` does); an exception, at import or later, prints its traceback to
  the log and exits 1, SystemExit keeps its code, and atexit handlers run;
- the job's exit code, its kill (StopJob, MaxRuntimeInSeconds) and its wall time are its own process's.
What differs, and when the job gets a fresh interpreter instead: the preloaded libraries are already imported (a job
that sets variables read when they or the interpreter load, PYTHON*, OMP_*, OPENBLAS_*, MKL_*, KMP_*, LD_*, MALLOC_*,
or whose code folder or PYTHONPATH holds its own copy of one of them, gets a fresh interpreter); the hash seed is the
server's; stdin is /dev/null; `multiprocessing.current_process()` is not MainProcess (its default start method is
reset to the platform's). This module is imported by that server: it must stay light (no selfheal_bench.localcloud).
"""

from __future__ import annotations

import atexit
import functools
import importlib
import io
import json
import multiprocessing
import multiprocessing.context
import os
import runpy
import site
import subprocess
import sys
import traceback
from multiprocessing import forkserver, popen_forkserver, reduction, spawn, util
from multiprocessing.context import set_spawning_popen
from pathlib import Path
from typing import Any

PRELOAD = ("numpy", "pandas", "pyarrow", "pyarrow.csv", "sklearn.model_selection", "sklearn.metrics", "xgboost")
_PRELOADED_TOPS = {name.split(".")[0] for name in PRELOAD}
# Read when the interpreter or a preloaded library starts: a job that sets one gets a fresh interpreter.
_READ_AT_START = ("PYTHON", "OMP_", "OPENBLAS_", "MKL_", "KMP_", "LD_", "MALLOC_")
_EMULATED = {"PYTHONPATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}  # done here as the interpreter does


class ServedProcess:
    """A served host's process, with what the job runner uses of subprocess.Popen."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self._process = process

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def kill(self) -> None:
        self._process.kill()

    def wait(self) -> int | None:
        self._process.join()
        return self._process.exitcode


def servable(command: list[str], env: dict[str, str], cwd: Path) -> bool:
    """Whether the server can start this command as a fresh interpreter would (else: a fresh interpreter)."""
    if len(command) < 2 or command[0] != sys.executable:
        return False
    if command[1] == "-m":
        first = str(cwd)
        if len(command) < 3:
            return False
    elif command[1].startswith("-") or not command[1].endswith(".py"):
        return False
    else:
        first = str((cwd / command[1]).parent)
    if any(key.startswith(_READ_AT_START) and key not in _EMULATED for key in env):
        return False
    folders = [first, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    return not any((Path(folder) / top).exists() or (Path(folder) / f"{top}.py").exists()
                   for folder in folders for top in _PRELOADED_TOPS)


def start(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> ServedProcess:
    """Start the job's process from the server (started on first use, once per process)."""
    _context()
    process = _JobProcess(target=_run, args=(command, env, str(cwd), str(log), _site_path()),
                          name=f"job-host-{Path(log).parent.name}", daemon=False)
    process.start()
    return ServedProcess(process)


class _Launch(popen_forkserver.Popen):
    """multiprocessing's forkserver start without the parent's `__main__`: a forkserver child imports (runs) the
    module that started this process before its target, and a job must not run the local cloud's caller."""

    def _launch(self, process_obj: Any) -> None:  # popen_forkserver.Popen._launch of Python 3.11, less the main module
        prep_data = {key: value for key, value in spawn.get_preparation_data(process_obj._name).items()
                     if not key.startswith("init_main")}
        buf = io.BytesIO()
        set_spawning_popen(self)
        try:
            reduction.dump(prep_data, buf)
            reduction.dump(process_obj, buf)
        finally:
            set_spawning_popen(None)
        self.sentinel, w = forkserver.connect_to_new_process(self._fds)
        _parent_w = os.dup(w)  # as the original: the child's sentinel of its parent
        self.finalizer = util.Finalize(self, util.close_fds, (_parent_w, self.sentinel))
        with open(w, "wb", closefd=True) as f:
            f.write(buf.getbuffer())
        self.pid = forkserver.read_signed(self.sentinel)


class _JobProcess(multiprocessing.context.ForkServerProcess):  # type: ignore[name-defined,misc]
    @staticmethod
    def _Popen(process_obj: Any) -> _Launch:  # noqa: N802 - multiprocessing's name
        return _Launch(process_obj)


@functools.cache
def _context() -> multiprocessing.context.ForkServerContext:
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__, *PRELOAD])
    util.Finalize(None, _stop_server, exitpriority=0)  # also in a multiprocessing child's exit
    return context  # type: ignore[return-value]


def _stop_server() -> None:
    """Stop the server and wait for it, so that its CPU time and its jobs' (it waits for them) count as this
    process's children's, as a fresh interpreter's would (resource.RUSAGE_CHILDREN: the benchmarks read it)."""
    forkserver._forkserver._stop()  # type: ignore[attr-defined]  # the module's own stop, there for its tests


@functools.cache
def _site_path() -> list[str]:
    """A fresh interpreter's sys.path after its first entry and PYTHONPATH (-I: neither; the job's are added)."""
    done = subprocess.run([sys.executable, "-I", "-c", "import json, sys; print(json.dumps(sys.path))"],  # noqa: S603
                          capture_output=True, text=True, check=True, timeout=60)
    return list(json.loads(done.stdout))


def _run(command: list[str], env: dict[str, str], cwd: str, log: str, site_path: list[str]) -> None:
    """In the forked child: become the job's process, then run its script or module as `__main__`."""
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(descriptor, 1)
    os.dup2(descriptor, 2)
    os.close(descriptor)
    unbuffered = bool(env.get("PYTHONUNBUFFERED"))
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=True,
                                  write_through=unbuffered)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True, write_through=True)
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    sys.dont_write_bytecode = bool(env.get("PYTHONDONTWRITEBYTECODE"))
    module = command[2] if command[1] == "-m" else None
    first = cwd if module else os.path.dirname(os.path.abspath(command[1]))
    sys.path[:] = [first, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep)), *site_path]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()
    multiprocessing.context._default_context._actual_context = None  # type: ignore[attr-defined]  # the platform's
    sys.modules.pop("sitecustomize", None)
    try:
        site.execsitecustomize()
        if module:
            sys.argv = [module, *command[3:]]  # run_module puts the module's path first, as `python -m` does
            runpy.run_module(module, run_name="__main__", alter_sys=True)
        else:
            sys.argv = command[1:]
            runpy.run_path(command[1], run_name="__main__")
    except SystemExit:
        raise
    except BaseException:  # as the interpreter: the traceback on stderr, exit code 1
        traceback.print_exc()
        raise SystemExit(1) from None
    finally:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
