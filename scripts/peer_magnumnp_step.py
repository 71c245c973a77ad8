"""Time magnum.np's Heun step on the bench_solver problem (run by bench_solver.py inside a venv
that has magnumnp and torch; not imported by jaxmag). Prints one JSON line."""
import argparse
import json
import time

parser = argparse.ArgumentParser()
parser.add_argument("--n", type=int, default=128)
parser.add_argument("--steps", type=int, default=50)
parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
args = parser.parse_args()

import torch  # noqa: E402

torch.set_num_threads(1)
import magnumnp as mn  # noqa: E402  (sets torch's default dtype to float64 on import)

torch.set_default_dtype(getattr(torch, args.dtype))
mesh = mn.Mesh((args.n, args.n, 1), (4e-9, 4e-9, 4e-9))
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


for _ in range(5):  # warm-up: kernel setup, torch.compile
    step()
start = time.perf_counter()
for _ in range(args.steps):
    step()
elapsed = time.perf_counter() - start
print(json.dumps({
    "code": "magnum.np " + mn.__version__, "torch": torch.__version__, "dtype": args.dtype,
    "cells": args.n * args.n, "steps": args.steps, "seconds": elapsed,
    "cell_steps_per_s": args.n * args.n * args.steps / elapsed, "state_dtype": str(state.m.dtype),
}))
