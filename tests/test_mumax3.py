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
