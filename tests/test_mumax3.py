"""MuMax3 tables and output folders, ``jaxmag export-ovf``, ``.mx3`` export and ``compare``."""
from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from jaxmag.cli import main as cli_main
from jaxmag.io.mumax3 import read_output_folder, read_table, write_table
from jaxmag.io.ovf import read_ovf

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
SP4_DIR = FIXTURES / "mumax3" / "sp4"
needs_fixtures = pytest.mark.skipif(not SP4_DIR.is_dir(), reason=f"shared fixtures not found at {SP4_DIR}")


def zero_crossing(t: np.ndarray, y: np.ndarray) -> float:
    i = int(np.nonzero(np.sign(y[:-1]) != np.sign(y[1:]))[0][0])
    return float(t[i] - y[i] * (t[i + 1] - t[i]) / (y[i + 1] - y[i]))


# ------------------------------------------------------------------------------ tables


@needs_fixtures
def test_sp4_table():
    table = read_table(SP4_DIR / "table.txt")
    assert table.names == ("t", "mx", "my", "mz")
    assert table.units == {"t": "s", "mx": "", "my": "", "mz": ""}
    assert table.num_rows == 101
    assert np.all(np.diff(table["t"]) > 0)
    assert zero_crossing(table["t"], table["mx"]) == pytest.approx(0.1386e-9, abs=0.0005e-9)
    with pytest.raises(KeyError, match="no column 'E_total'"):
        table["E_total"]


def test_table_any_columns_and_ragged_rows(tmp_path):
    path = tmp_path / "table.txt"
    path.write_text("# t (s)\tmx ()\tE_total (J)\tB_extx (T)\n0\t1\t-1e-18\t0.01\n1e-12\t0.9\t-2e-18\t0.01\n")
    table = read_table(path)
    assert table.units["E_total"] == "J" and table.units["B_extx"] == "T"
    np.testing.assert_array_equal(table["E_total"], [-1e-18, -2e-18])
    path.write_text("# t (s)\tmx ()\n0\t1\n1e-12\n")
    with pytest.raises(ValueError, match="line 3 has 1 columns, the header has 2"):
        read_table(path)
    path.write_text("t mx\n0 1\n")
    with pytest.raises(ValueError, match="header"):
        read_table(path)


def test_write_table_round_trip(tmp_path):
    t = np.linspace(0, 1e-9, 7)
    cols = {"t": t, "mx": np.cos(t * 1e9), "mz": np.sin(t * 1e9)}
    back = read_table(write_table(tmp_path / "table.txt", cols, {"t": "s"}))
    for k, v in cols.items():
        np.testing.assert_array_equal(back[k], v)


@needs_fixtures
def test_sp4_output_folder():
    run = read_output_folder(SP4_DIR)
    assert run.m.shape == (2, 1, 32, 128, 3)
    np.testing.assert_array_equal(run.times, [0.0, 1e-9])
    np.testing.assert_allclose(run.cell_size, (500e-9 / 128, 125e-9 / 32, 3e-9), rtol=1e-12)
    assert run.table is not None and run.table.num_rows == 101
    # The table's first and last rows are the averages of the two snapshots (float32 sums).
    np.testing.assert_allclose(run.m[0].mean(axis=(0, 1, 2)), [run.table[c][0] for c in ("mx", "my", "mz")], atol=1e-6)
    np.testing.assert_allclose(run.m[1].mean(axis=(0, 1, 2)), [run.table[c][-1] for c in ("mx", "my", "mz")], atol=1e-6)


def test_output_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no magnetisation snapshots"):
        read_output_folder(tmp_path)
    with pytest.raises(FileNotFoundError):
        read_output_folder(tmp_path / "nope")


# ------------------------------------------------------------------------------ export-ovf


def make_dataset(path: Path, *, n: int = 3, T: int = 5, ny: int = 4, nx: int = 6, components: str = "xz",
                 temperature: float = 0.0, seed: int = 0, done: bool = True) -> Path:
    """A tiny dataset in the layout the simulate command writes."""
    from jaxmag.config import Config, MaterialConfig, SimulationConfig

    rng = np.random.default_rng(seed)
    m = rng.normal(size=(n, T, len(components), ny, nx)).astype(np.float32)
    config = Config(
        material=MaterialConfig(temperature=temperature),
        simulation=SimulationConfig(components=components, num_frames=T),
    )
    with h5py.File(path, "w") as f:
        f.create_dataset("m", data=m)
        f.create_dataset("t", data=5e-10 + 1e-11 * np.arange(T))
        f.create_dataset("labels", data=np.zeros((n, ny, nx), np.uint8))
        f.create_dataset("done", data=np.full(n, done))
        f.attrs["components"] = components
        f.attrs["cell_size_m"] = np.array([4e-9, 4e-9, 4e-9])
        f.attrs["config"] = config.to_toml()
    return path


def test_export_ovf_cli(tmp_path, capsys):
    data = make_dataset(tmp_path / "data.h5")
    out = tmp_path / "frames"
    assert cli_main(["export-ovf", str(data), "--run", "1", "--out", str(out)]) == 2
    assert "stores only the components 'xz'" in capsys.readouterr().err
    assert not out.exists() or not list(out.glob("m*.ovf"))
    assert cli_main(["export-ovf", str(data), "--run", "1", "--out", str(out), "--fill-missing"]) == 0
    files = sorted(out.glob("m*.ovf"))
    assert [f.name for f in files] == [f"m{k:06d}.ovf" for k in range(5)]
    with h5py.File(data) as f:
        m, t = f["m"][1], f["t"][...]
    for k, path in enumerate(files):
        frame = read_ovf(path)
        assert frame.array.shape == (1, 4, 6, 3)
        assert frame.time_s == pytest.approx(t[k], rel=1e-15)
        np.testing.assert_array_equal(frame.array[0, ..., 0], m[k, 0])
        np.testing.assert_array_equal(frame.array[0, ..., 2], m[k, 1])
        np.testing.assert_array_equal(frame.array[0, ..., 1], 0.0)
    run = read_output_folder(out)
    assert run.components == "xz"
    np.testing.assert_allclose(run.table["mx"], m[:, 0].mean(axis=(1, 2)), rtol=1e-6)
    assert "my" not in run.table
    # Refuses to overwrite earlier output unless asked, and leaves it intact.
    before = files[0].read_bytes()
    assert cli_main(["export-ovf", str(data), "--run", "0", "--out", str(out), "--fill-missing"]) == 2
    assert files[0].read_bytes() == before
    assert cli_main(["export-ovf", str(data), "--run", "0", "--out", str(out), "--fill-missing", "--overwrite"]) == 0
    assert files[0].read_bytes() != before


def test_export_ovf_errors(tmp_path, capsys):
    data = make_dataset(tmp_path / "data.h5", components="xyz", done=False)
    assert cli_main(["export-ovf", str(data), "--run", "0", "--out", str(tmp_path / "o")]) == 2
    assert "not finished" in capsys.readouterr().err
    data = make_dataset(tmp_path / "d2.h5", components="xyz")
    assert cli_main(["export-ovf", str(data), "--run", "7", "--out", str(tmp_path / "o")]) == 2
    assert "out of range" in capsys.readouterr().err
    assert cli_main(["export-ovf", str(tmp_path / "none.h5"), "--run", "0", "--out", str(tmp_path / "o")]) == 2


# ------------------------------------------------------------------------------ .mx3 export

from jaxmag.fields.exchange import link_stiffness  # noqa: E402
from jaxmag.io.mx3 import (  # noqa: E402
    assign_regions,
    mx3_script,
    parse_mx3,
    quantize_easy_axis,
    script_temperature,
    sp4_script,
    touching_pairs,
    write_mx3_run,
)

simulate = pytest.importorskip("jaxmag.assemble")  # build_run(config, i)

CONFIG_TOML = """
[grid]
nx = {n}
ny = {n}
boundary = "{boundary}"
[defects]
num_a = {blobs}
num_b = {blobs}
size_min = {size}
size_max = {size}
angle_sigma_deg = 15.0
angle_mode = "{angle_mode}"
[simulation]
num_frames = 5
[dataset]
num_runs = 3
"""


def make_config(tmp_path: Path, boundary: str = "periodic", angle_mode: str = "per_blob", n: int = 20, blobs: int = 2, size: int = 10) -> Path:
    path = tmp_path / f"{boundary}-{angle_mode}.toml"
    path.write_text(CONFIG_TOML.format(boundary=boundary, angle_mode=angle_mode, n=n, blobs=blobs, size=size))
    return path


@pytest.mark.parametrize("boundary", ["periodic", "open"])
def test_exported_script_reproduces_material_maps(tmp_path, boundary):
    from jaxmag.config import load_config

    config_path = make_config(tmp_path, boundary)
    config = load_config(config_path)
    out = tmp_path / "export"
    assert cli_main(["mumax3", "export", str(config_path), "--run", "2", "--out", str(out)]) == 0
    spec = simulate.build_run(config, 2)
    script = parse_mx3((out / "run.mx3").read_text())
    grid = config.grid.to_grid()
    assert script.grid_size == (grid.nx, grid.ny, grid.nz)
    np.testing.assert_allclose(script.cell_size, grid.cell_size, rtol=1e-15)
    assert script.pbc == ((grid.pbc_images, grid.pbc_images, 0) if boundary == "periodic" else (0, 0, 0))
    assert script.variables["regions.LoadFile"] == "regions.ovf"
    region = read_ovf(out / "regions.ovf").array[..., 0]
    assert np.all(region == np.round(region)) and region.max() >= 4  # background + 4 blobs
    region = region.astype(int)
    mat = spec.material
    dtype = np.asarray(mat.Ms).dtype
    maps = {
        "Msat": mat.Ms, "Aex": mat.A_ex, "Ku1": mat.K_u, "alpha": mat.alpha, "Temp": mat.temperature,
        "AnisU": mat.easy_axis, "B_ext": mat.B_ext,
    }
    for name, values in maps.items():
        values = np.asarray(values)
        from_script = np.array([[[script.param(name, r) for r in row] for row in plane] for plane in region], dtype=np.float64)
        # Values are written as the shortest decimal of the map's float32 value: exact after casting.
        np.testing.assert_array_equal(from_script.astype(dtype), values, err_msg=name)
    # Inter-region exchange: every touching pair of regions gets jaxmag's harmonic mean, and
    # every ext_InterExchange line belongs to a touching pair.
    A = np.asarray(mat.A_ex, np.float64)
    seen = set()
    for axis in (1, 2):  # y, x of (nz, ny, nx)
        n = region.shape[axis]
        for shift_from in range(n if boundary == "periodic" else n - 1):
            i_sl = [slice(None)] * 3
            j_sl = [slice(None)] * 3
            i_sl[axis], j_sl[axis] = shift_from, (shift_from + 1) % n
            ri, rj = region[tuple(i_sl)].ravel(), region[tuple(j_sl)].ravel()
            ai, aj = A[tuple(i_sl)].ravel(), A[tuple(j_sl)].ravel()
            for a, b, x, y in zip(ri, rj, ai, aj):
                if a != b:
                    key = (min(a, b), max(a, b))
                    seen.add(key)
                    assert script.inter_exchange[key] == pytest.approx(2 * x * y / (x + y), rel=1e-15)
    assert seen == set(script.inter_exchange)
    assert script.calls_named("SetSolver") == [(2,)]
    assert script.variables["FixDt"] == config.simulation.dt
    assert script.calls_named("ThermSeed") == [(spec.thermal_seed,)]
    assert script.calls_named("run")[0] == (config.simulation.burn_in_s,)
    assert script.calls_named("autosave") == [("m", config.simulation.frame_interval_s)]
    n_frames = config.simulation.num_frames
    run_time = script.calls_named("run")[1][0]
    assert n_frames * config.simulation.frame_interval_s < run_time < (n_frames + 1) * config.simulation.frame_interval_s
    assert script.variables["m"] == tuple(float(v) for v in np.asarray(spec.m0)[0, 0, 0])
    assert script_temperature((out / "run.mx3").read_text()) == config.material.temperature


def test_region_limit_and_quantisation(tmp_path):
    from jaxmag.config import load_config

    config = load_config(make_config(tmp_path, angle_mode="per_cell", n=40, blobs=4, size=40))  # 320 blob cells
    spec = simulate.build_run(config, 0)
    with pytest.raises(ValueError, match=r"MuMax3 allows at most 256 regions.*quantize-angle-deg"):
        assign_regions(spec.material)
    coarse = quantize_easy_axis(spec.material, 2.0)
    regions = assign_regions(coarse)
    assert regions.count <= 256
    u0, u1 = np.asarray(spec.material.easy_axis, np.float64), np.asarray(coarse.easy_axis, np.float64)
    angle = np.degrees(np.arccos(np.clip(np.sum(u0 * u1, -1) / np.linalg.norm(u0, axis=-1), -1, 1)))
    assert angle.max() <= np.sqrt(2) * 1.0 + 1e-3  # half a step in each of two angles
    out = tmp_path / "o"
    args = ["mumax3", "export", str(tmp_path / "periodic-per_cell.toml"), "--run", "0", "--out", str(out)]
    assert cli_main(args) == 2 and not out.exists()
    assert cli_main(args + ["--quantize-angle-deg", "2"]) == 0
    assert cli_main(args + ["--quantize-angle-deg", "2"]) == 2  # refuses to overwrite
    assert cli_main(["mumax3", "export", str(tmp_path / "periodic-per_cell.toml"), "--run", "9", "--out", str(out)]) == 2


def test_non_uniform_m0_and_vacuum(tmp_path):
    from jaxmag.config import SimulationConfig
    from jaxmag.grid import Grid
    from jaxmag.material import Material

    grid = Grid(4, 3, 2, 2e-9, 2e-9, 2e-9)
    mat = Material.uniform(grid, Ms=8e5, A_ex=1e-11)
    Ms = np.asarray(mat.Ms).copy()
    Ms[:, :, 0] = 0.0  # a vacuum column
    A = np.asarray(mat.A_ex).copy()
    A[1] = 2e-11  # top layer differs: regions touch across z
    mat = mat.replace(Ms=Ms, A_ex=A)
    m0 = np.zeros(grid.vector_shape)
    m0[..., 0] = 1.0
    m0[1, ..., 0], m0[1, ..., 2] = 0.6, 0.8
    m0[:, :, 0] = 0.0
    path = write_mx3_run(tmp_path, grid, mat, m0, SimulationConfig(), thermal_seed=5)
    script = parse_mx3(path.read_text())
    assert script.variables["m.LoadFile"] == "m0.ovf"
    np.testing.assert_array_equal(read_ovf(tmp_path / "m0.ovf").array, m0.astype(np.float32))
    regions = assign_regions(mat)
    assert regions.count == 4
    pairs = touching_pairs(regions.index, periodic=False)
    magnetic = {(i, j) for i, j in pairs if regions.params[i]["Msat"] > 0 and regions.params[j]["Msat"] > 0}
    assert set(script.inter_exchange) == magnetic and len(magnetic) == 1
    (key,) = magnetic
    assert script.inter_exchange[key] == pytest.approx(link_stiffness(1e-11, 2e-11), rel=1e-7)
    assert "EnableDemag" not in script.variables
    with pytest.raises(ValueError, match="thermal_seed"):
        mx3_script(grid, mat, m0, SimulationConfig(), thermal_seed=-1)
    with pytest.raises(ValueError, match="m0 has shape"):
        mx3_script(grid, mat, m0[:1], SimulationConfig(), thermal_seed=1)


@needs_fixtures
def test_sp4_script_matches_reference(tmp_path):
    reference = parse_mx3((SP4_DIR / "sp4.mx3").read_text())
    assert parse_mx3(sp4_script()) == reference
    assert reference.cell_size == (500e-9 / 128, 125e-9 / 32, 3e-9)
    assert reference.param("B_ext", 0) == (-24.6e-3, 4.3e-3, 0.0)
    assert cli_main(["mumax3", "sp4", "--out", str(tmp_path)]) == 0
    assert parse_mx3((tmp_path / "sp4.mx3").read_text()) == reference


def test_parser_rejects_unknown_statements():
    with pytest.raises(ValueError, match="line 2: unsupported function DefRegion"):
        parse_mx3("Msat = 1\nDefRegion(1, circle(1e-9))\n")
    with pytest.raises(ValueError, match="line 1: region must be an integer"):
        parse_mx3("Msat.SetRegion(300, 1)")
    with pytest.raises(ValueError, match="cannot parse"):
        parse_mx3("for i:=0; i<3; i++{")


def test_run_without_and_with_mumax3(tmp_path, capsys):
    (tmp_path / "sp4.mx3").write_text(sp4_script())
    assert cli_main(["mumax3", "run", str(tmp_path), "--mumax3", "mumax3-not-installed"]) == 2
    err = capsys.readouterr().err
    assert "NVIDIA GPU" in err and "mumax.github.io" in err
    fake = tmp_path / "bin" / "mumax3"
    fake.parent.mkdir()
    # A stand-in binary: prints, then creates the output folder MuMax3 would.
    fake.write_text('#!/bin/sh\necho "fake mumax3 running $1"\nmkdir -p "${1%.mx3}.out"\n')
    fake.chmod(0o755)
    assert cli_main(["mumax3", "run", str(tmp_path), "--mumax3", str(fake)]) == 0
    assert (tmp_path / "sp4.out").is_dir()
    fake.write_text("#!/bin/sh\nexit 3\n")
    assert cli_main(["mumax3", "run", str(tmp_path), "--mumax3", str(fake)]) == 3


# ------------------------------------------------------------------------------ compare

from jaxmag.compare_thermal import ThermalOptions  # noqa: E402
from jaxmag.compare import (  # noqa: E402
    Tolerances,
    Trajectory,
    autocorrelation_time,
    compare,
    load_source,
)
from jaxmag.io.ovf import write_ovf  # noqa: E402


def write_frames(folder: Path, m: np.ndarray, times: np.ndarray, cell=(4e-9, 4e-9, 4e-9)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(len(m)):
        write_ovf(folder / f"m{k:06d}.ovf", m[k], cell, fmt="binary8", time_s=float(times[k]))
    return folder


def precessing(T: int = 30, ny: int = 4, nx: int = 5, phase: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic, spatially varying precession m(t) of unit vectors, (T, 1, ny, nx, 3)."""
    t = np.linspace(0, 1e-9, T)
    x = np.linspace(0, 1, nx)[None, None, :]
    angle = 2 * np.pi * (t[:, None, None] * 2e9 + 0.2 * x) + phase
    tilt = 0.3 + 0.1 * np.linspace(0, 1, ny)[None, :, None]
    m = np.stack([np.cos(angle) * np.sin(tilt), np.sin(angle) * np.sin(tilt), np.cos(tilt) * np.ones_like(angle)], axis=-1)
    return m[:, None], t


def test_compare_deterministic(tmp_path, capsys):
    m, t = precessing()
    a = write_frames(tmp_path / "a", m, t)
    b = write_frames(tmp_path / "b", m.copy(), t)
    assert cli_main(["mumax3", "compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "deterministic" in out and "PASS" in out
    # Same physics sampled every other frame: B is interpolated (A is the denser series).
    half = write_frames(tmp_path / "half", m[::2], t[::2])
    result = compare(load_source(str(a)), load_source(str(half)))
    assert result.passed, result.table()
    # A phase lag of 0.05 rad: ~0.013 RMS |Δm| per frame -> outside 0.01.
    m2, _ = precessing(phase=0.05)
    c = write_frames(tmp_path / "c", m2, t)
    assert cli_main(["mumax3", "compare", str(a), str(c)]) == 1
    assert "FAIL" in capsys.readouterr().out
    assert cli_main(["mumax3", "compare", str(a), str(c), "--tol-rms", "0.05", "--tol-mean", "0.05"]) == 0
    # Mismatched meshes are a user error.
    d = write_frames(tmp_path / "d", m[:, :, :3], t)
    assert cli_main(["mumax3", "compare", str(a), str(d)]) == 2


def test_compare_dataset_against_its_ovf_export(tmp_path):
    data = make_dataset(tmp_path / "data.h5", components="xz", temperature=0.0)
    out = tmp_path / "frames"
    assert cli_main(["export-ovf", str(data), "--run", "2", "--out", str(out), "--fill-missing"]) == 0
    a, b = load_source(f"{data}#run=2"), load_source(str(out))
    assert a.components == b.components == "xz"
    result = compare(a, b)
    assert result.mode == "deterministic" and result.passed, result.table()
    assert cli_main(["mumax3", "compare", str(data), str(out), "--run-a", "1"]) == 1  # another run
    with pytest.raises(ValueError, match="say which run"):
        load_source(str(data))


def ou_movie(seed: int, T: int = 1000, ny: int = 6, nx: int = 6, sigma: float = 0.05, rho: float = 0.8) -> np.ndarray:
    """Independent Ornstein-Uhlenbeck fluctuations per cell around a fixed spatial mean map."""
    rng = np.random.default_rng(seed)
    mean = np.stack(np.broadcast_arrays(0.9 + 0.05 * np.sin(np.arange(nx) / 2.0)[None, :], 0.0 * np.ones((ny, 1)), 0.1 * np.ones((ny, nx))), -1)
    x = np.zeros((T, ny, nx, 3))
    x[0] = rng.normal(size=(ny, nx, 3)) * sigma
    for k in range(1, T):
        x[k] = rho * x[k - 1] + np.sqrt(1 - rho**2) * sigma * rng.normal(size=(ny, nx, 3))
    return (mean + x)[:, None]


def in_memory(m: np.ndarray, times: np.ndarray, name: str) -> Trajectory:
    """A Trajectory without the file round trip (the loaders are tested above)."""
    return Trajectory(m, times, times, m.mean(axis=(1, 2, 3)), (4e-9, 4e-9, 4e-9), "xyz", None, name)


def test_compare_thermal():
    t = 5e-10 + 1e-11 * np.arange(1000)
    a = in_memory(ou_movie(1), t, "a")
    result = compare(a, in_memory(ou_movie(2), t, "b"), mode="thermal")
    assert result.mode == "thermal" and result.passed, result.table()
    # No region map: one "film" region; mean and std maps, var and <m^2> of m_par, m_perp,
    # m_z, and the autocorrelation times of |<m_xy>| and <m_z>.
    assert len(result.statistics) == 3 * 4 + 2
    # Twice the fluctuation amplitude: std maps disagree.
    result = compare(a, in_memory(ou_movie(3, sigma=0.1), t, "c"), mode="thermal")
    assert not result.passed
    failed = {s.name for s in result.statistics if not s.passed}
    assert any("std" in name for name in failed), result.table()
    # Much slower fluctuations (same amplitude): the autocorrelation time disagrees. (Its
    # bootstrap error is honest about a 33-frame correlation, so this needs 4000 frames.)
    long_t = 5e-10 + 1e-11 * np.arange(4000)
    result = compare(in_memory(ou_movie(1, T=4000), long_t, "a"), in_memory(ou_movie(4, T=4000, rho=0.97), long_t, "d"), mode="thermal")
    assert any(s.name.startswith("tau") and not s.passed for s in result.statistics), result.table()
    # A shifted mean map (by 0.05 along x) is a shifted mean of m_par.
    shifted = ou_movie(5)
    shifted[..., 0] += 0.05
    result = compare(a, in_memory(shifted, t, "e"), mode="thermal")
    assert any(s.name == "mean m_par [film]" and not s.passed for s in result.statistics), result.table()


def test_compare_auto_mode_uses_dataset_temperature(tmp_path):
    data = make_dataset(tmp_path / "hot.h5", temperature=300.0, T=12)  # thermal statistics need >= 8 frames
    result = compare(load_source(f"{data}#run=0"), load_source(f"{data}#run=0"))
    assert result.mode == "thermal" and result.passed


def test_autocorrelation_time_of_ar1():
    rng = np.random.default_rng(0)
    rho, n = 0.9, 200_000
    x = np.zeros(n)
    noise = rng.normal(size=n)
    for k in range(1, n):
        x[k] = rho * x[k - 1] + noise[k]
    # AR(1) autocorrelation rho^k falls to 1/e after -1/ln(rho) steps.
    assert autocorrelation_time(x, 1e-12) == pytest.approx(-1e-12 / np.log(rho), rel=0.05)
    assert autocorrelation_time(np.ones(10), 1.0) == 0.0


def test_tolerance_defaults_are_stated():
    tol = Tolerances()
    assert (tol.tol_rms, tol.tol_mean) == (0.01, 0.01)
    thermal = ThermalOptions()
    assert (thermal.alpha, thermal.scale_film, thermal.scale_contrast) == (0.05, 2.5, 1.25)


@pytest.mark.slow
@needs_fixtures
def test_sp4_jaxmag_against_mumax3_output_folder(tmp_path):
    """End to end: jaxmag SP4 written with our OVF/table writers, compared with the MuMax3
    output folder by ``jaxmag mumax3 compare`` with the default tolerances (0.01). Measured
    (float32, RK4 dt = 0.1 ps): max |Δ<m>| = (0.0025, 0.0055, 0.0013), RMS of <m>
    differences (0.00066, 0.0025, 0.00058), RMS |Δm| of the relaxed state 0.0017."""
    problems = pytest.importorskip("jaxmag.problems")
    result = problems.run_sp4()
    out = tmp_path / "jaxmag-sp4"
    out.mkdir()
    write_ovf(out / "m000000.ovf", result.m_relaxed.astype(np.float32), (500e-9 / 128, 125e-9 / 32, 3e-9), time_s=0.0)
    write_table(out / "table.txt", {"t": result.t_s, **{f"m{c}": result.m_avg[:, i] for i, c in enumerate("xyz")}}, {"t": "s"})
    comparison = compare(load_source(str(out)), load_source(str(SP4_DIR)), Tolerances(), mode="deterministic")
    print(comparison.table())
    assert comparison.passed, comparison.table()
    reference = read_table(SP4_DIR / "table.txt")
    mine = np.stack([np.interp(reference["t"], result.t_s, result.m_avg[:, i]) for i in range(3)], axis=1)
    ref = np.stack([reference[c] for c in ("mx", "my", "mz")], axis=1)
    rms = np.sqrt(np.mean((mine - ref) ** 2, axis=0))
    print("RMS of <m> differences (x, y, z):", rms)
    assert np.all(rms <= 0.01)


def test_script_from_the_assembled_movie_spec_equals_the_config_form():
    """The export takes the assembly's plain objects (issue 12); both forms give one script, and
    the solver choice maps to MuMax3's SetSolver number."""
    import dataclasses as dc

    from jaxmag.assemble import assemble, build_run
    from jaxmag.config import load_config
    from jaxmag.io.mx3 import mx3_script

    config = load_config(Path(__file__).resolve().parents[1] / "configs" / "tiny.toml")
    assembly, spec = assemble(config), build_run(config, 0)
    from_config = mx3_script(config.grid.to_grid(), spec.material, spec.m0, config.simulation, thermal_seed=3)
    from_movie = mx3_script(assembly.grid, spec.material, spec.m0, assembly.movie, thermal_seed=3)
    assert from_movie == from_config and "SetSolver(2)" in from_movie
    rk4 = mx3_script(assembly.grid, spec.material, spec.m0, dc.replace(assembly.movie, solver="rk4"), thermal_seed=3)
    assert "SetSolver(4)" in rk4
