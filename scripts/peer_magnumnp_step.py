"""Time magnum.np's stochastic Heun step on the bench_solver / device_check problem (run in a
subprocess by those scripts, with a python that has torch; never imported by jaxmag).

Prints one JSON line: the figure, or ``{"skipped": reason}`` when torch or magnumnp is missing.

    python scripts/peer_magnumnp_step.py --n 128 --steps 50 [--device cpu|cuda] [--boundary open|periodic]
                                         [--path magnumnp-2.2.0-py3-none-any.whl]

magnum.np is pure Python, so its wheel can sit on ``sys.path`` as is (``--path``). Its import
pulls in packages that only its file output (pyvista), string method (xitorch), torchdiffeq
solvers and process naming (setproctitle) use; where those are absent (as on a GPU image with
no network) they are replaced by empty stand-ins, which the Heun step and field terms timed
here never touch.
"""
import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import time
import types

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=128)
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
parser.add_argument("--boundary", choices=["open", "periodic"], default="open")
parser.add_argument("--repeats", type=int, default=3, help="timed blocks of --steps steps; the fastest is reported")
parser.add_argument("--path", default="", help="extra sys.path entry holding magnumnp (a wheel or a folder)")
args = parser.parse_args()
if args.path:
    sys.path.insert(0, args.path)

OPTIONAL = ("pyvista", "xitorch", "torchdiffeq", "setproctitle")


class _Stub(types.ModuleType):
    """An empty module whose every attribute is a callable that must never be called."""

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def unavailable(*_a, **_k):
            raise RuntimeError(f"{self.__name__}.{name} is a stand-in (package not installed)")

        return unavailable


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in OPTIONAL:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _Stub(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        if module.__name__ == "setproctitle":
            module.setproctitle = lambda *_a, **_k: None


stubbed = [name for name in OPTIONAL if importlib.util.find_spec(name) is None]
if stubbed:
    OPTIONAL = tuple(stubbed)
    sys.meta_path.append(_StubFinder())

try:
    import torch
except ImportError as exc:
    print(json.dumps({"skipped": f"torch is not importable ({exc})"}))
    sys.exit(0)
if args.device == "cuda" and not torch.cuda.is_available():
    print(json.dumps({"skipped": "torch has no CUDA device"}))
    sys.exit(0)
torch.set_num_threads(1)
# magnum.np picks its device on import from CUDA_DEVICE (else it asks nvidia-smi-like probes).
os.environ["CUDA_DEVICE"] = "0" if args.device == "cuda" else "-1"
if importlib.util.find_spec("magnumnp") is None:
    print(json.dumps({"skipped": "magnumnp is not importable (pip install magnumnp==2.2.0, or --path to its wheel)"}))
    sys.exit(0)
import magnumnp as mn  # noqa: E402  (sets torch's default dtype to float64 on import)

torch.set_default_dtype(getattr(torch, args.dtype))
pbc = (4, 4, 0) if args.boundary == "periodic" else (0, 0, 0)
mesh = mn.Mesh((args.n, args.n, 1), (4e-9, 4e-9, 4e-9), pbc=pbc)
state = mn.State(mesh)
state.material = {"Ms": 8e5, "A": 1.3e-11, "Ku": 500.0, "Ku_axis": state.Constant([1.0, 0.0, 0.0]), "alpha": 0.02}
state.T = 300.0
state.m = state.Constant([1.0, 0.0, 0.0])
terms = [mn.ExchangeField(), mn.UniaxialAnisotropyField(), mn.DemagField(), mn.ThermalField()]
llg = mn.LLGSolver(terms)
# magnum.np 2.2's LLGSolver calls ODE solvers as step(t, m, dt, state=...), but its Heun class
# (the stochastic one: the thermal field is redrawn only when state._step changes) takes
# step(state, dt) and calls f(state): drive it directly, renormalising as LLGSolver.step does.
heun = mn.Heun(lambda st: llg.dm(st.t, st.m, st))


def step():
    heun.step(state, 1e-13)
    state.m = state.m / torch.linalg.norm(state.m, dim=-1, keepdim=True)


def sync():
    if args.device == "cuda":
        torch.cuda.synchronize()


for _ in range(5):  # warm-up: kernel setup, torch.compile
    step()
sync()
elapsed = float("inf")
for _ in range(args.repeats):  # best of several blocks, as bench_solver times jaxmag
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    elapsed = min(elapsed, time.perf_counter() - start)
print(json.dumps({
    "code": "magnum.np " + mn.__version__, "torch": torch.__version__, "dtype": args.dtype, "device": str(state.device),
    "boundary": args.boundary, "cells": args.n * args.n, "steps": args.steps, "seconds": elapsed,
    "cell_steps_per_s": args.n * args.n * args.steps / elapsed, "state_dtype": str(state.m.dtype),
    "stubbed_imports": stubbed,
}))
