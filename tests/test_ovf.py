"""OVF reader/writer against real OOMMF / MuMax3 / ubermag files and corrupted copies."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from jaxmag.io.ovf import OVFError, format_number, read_ovf, write_ovf

FIXTURES = Path(__file__).resolve().parents[1].parent / "shared" / "fixtures"
OVF_DIR = FIXTURES / "ovf"
SP4_DIR = FIXTURES / "mumax3" / "sp4"
pytestmark = pytest.mark.skipif(not OVF_DIR.is_dir(), reason=f"shared fixtures not found at {OVF_DIR}")

# name -> (shape (nz, ny, nx, valuedim), cell size m, version)
EXPECTED = {
    "demag_tensor_oommf.omf": ((3, 10, 20, 6), (1.0, 1.0, 1.0), 2),
    "mumax-bin4-linux.ovf": ((1, 32, 128, 3), (3.90625e-9, 3.90625e-9, 3e-9), 2),
    "mumax-bin4-windows.ovf": ((1, 32, 128, 3), (3.90625e-9, 3.90625e-9, 3e-9), 2),
    "mumax-txt-linux.ovf": ((4, 12, 24, 3), (2.5e-9, 2.5e-9, 2.5e-9), 2),
    "oommf-ovf1-bin4.omf": ((32, 32, 32, 3), (3.125e-9,) * 3, 1),
    "oommf-ovf1-bin8.omf": ((32, 32, 32, 3), (3.125e-9,) * 3, 1),
    "oommf-ovf2-bin4.omf": ((5, 5, 5, 3), (1e-9,) * 3, 2),
    "oommf-ovf2-bin8.omf": ((5, 5, 5, 3), (1e-9,) * 3, 2),
    "oommf-ovf2-txt.omf": ((5, 5, 5, 3), (1e-9,) * 3, 2),
    "ovf2-bin8_different-case.ovf": ((6, 25, 25, 3), (4e-9, 4e-9, 5e-10), 2),
}


def all_fixture_files() -> list[Path]:
    files = sorted(OVF_DIR.glob("*")) + sorted(SP4_DIR.glob("*.ovf"))
    return [f for f in files if f.suffix in (".ovf", ".omf")]


def test_every_fixture_is_covered():
    names = {f.name for f in OVF_DIR.iterdir() if f.suffix in (".ovf", ".omf")}
    assert names == set(EXPECTED), "a fixture was added or removed: update EXPECTED"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_shape_cell_size_version(name):
    shape, cell, version = EXPECTED[name]
    data = read_ovf(OVF_DIR / name)
    assert data.array.shape == shape
    assert data.array.dtype == np.float64
    np.testing.assert_allclose(data.cell_size, cell, rtol=1e-12)
    assert data.version == version
    assert np.all(np.isfinite(data.array))


@pytest.mark.parametrize("path", [SP4_DIR / "m000000.ovf", SP4_DIR / "m000001.ovf", OVF_DIR / "mumax-bin4-linux.ovf"], ids=lambda p: p.name)
def test_mumax_m_files_are_unit_vectors(path):
    data = read_ovf(path)
    norms = np.linalg.norm(data.array, axis=-1)
    np.testing.assert_allclose(norms, 1.0, atol=2e-7)  # float32 storage
    assert data.valuelabels == ("m_x", "m_y", "m_z")
    assert data.title == "m"


def test_mumax_times_from_desc():
    assert read_ovf(SP4_DIR / "m000000.ovf").time_s == 0.0
    assert read_ovf(SP4_DIR / "m000001.ovf").time_s == pytest.approx(1e-9, rel=1e-12)
    # OOMMF writes -2 s for "no simulation time" (energy minimiser): reported as None.
    assert read_ovf(OVF_DIR / "oommf-ovf2-bin8.omf").time_s is None


def test_demag_tensor_known_entries():
    data = read_ovf(OVF_DIR / "demag_tensor_oommf.omf")
    assert data.valuelabels[:3] == ("field_xx", "field_yy", "field_zz")
    N = data.array  # (k, j, i, component) with components xx, yy, zz, xy, xz, yz
    np.testing.assert_allclose(N[0, 0, 0, :3], 1 / 3, rtol=1e-12)
    np.testing.assert_allclose(N[0, 0, 0, 3:], 0.0, atol=1e-15)
    assert N[0, 0, 1, 0] == pytest.approx(-0.13501718, abs=5e-9)
    # Symmetry of a cube: N_yy(1,0,0) = N_zz(1,0,0) and the trace vanishes off the origin.
    assert N[0, 0, 1, 1] == pytest.approx(N[0, 0, 1, 2], rel=1e-10)
    np.testing.assert_allclose(N[..., :3].sum(axis=-1)[0, 0, 1:], 0.0, atol=1e-12)
    assert data.origin == (-0.5, -0.5, -0.5)


def test_mumax_linux_and_windows_files_equal():
    a = read_ovf(OVF_DIR / "mumax-bin4-linux.ovf")
    b = read_ovf(OVF_DIR / "mumax-bin4-windows.ovf")
    np.testing.assert_array_equal(a.array, b.array)
    assert a.header == b.header


def test_oommf_variants_agree_to_their_precision():
    txt = read_ovf(OVF_DIR / "oommf-ovf2-txt.omf").array
    bin8 = read_ovf(OVF_DIR / "oommf-ovf2-bin8.omf").array
    bin4 = read_ovf(OVF_DIR / "oommf-ovf2-bin4.omf").array
    scale = np.abs(bin8).max()  # Ms = 8e6 A/m
    np.testing.assert_allclose(txt, bin8, rtol=0, atol=1e-8 * scale)  # text keeps ~15 digits
    np.testing.assert_allclose(bin4, bin8, rtol=0, atol=1e-7 * scale)  # float32 rounding
    ovf1_8 = read_ovf(OVF_DIR / "oommf-ovf1-bin8.omf")
    ovf1_4 = read_ovf(OVF_DIR / "oommf-ovf1-bin4.omf")
    np.testing.assert_allclose(ovf1_4.array, ovf1_8.array, rtol=0, atol=1e-7 * np.abs(ovf1_8.array).max())
    assert ovf1_8.valueunits == ("A/m",) * 3


def test_case_insensitive_keywords():
    data = read_ovf(OVF_DIR / "ovf2-bin8_different-case.ovf")
    assert data.origin == (0.0, 0.0, -8e-9)
    assert data.valuelabels == ()


# ------------------------------------------------------------------- writing / round trips


@pytest.mark.parametrize("name,fmt", [("mumax-bin4-linux.ovf", "binary4"), ("mumax-txt-linux.ovf", "text")])
def test_writer_reproduces_mumax3_files_byte_for_byte(tmp_path, name, fmt):
    src = read_ovf(OVF_DIR / name)
    out = write_ovf(
        tmp_path / name, src.array.astype(np.float32), src.cell_size, fmt=fmt, title=src.title,
        time_s=src.time_s, valuelabels=src.valuelabels, valueunits=src.valueunits,
    )
    assert out.read_bytes() == (OVF_DIR / name).read_bytes()


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("fmt,version", [("binary4", 2), ("binary8", 2), ("text", 2), ("binary8", 1), ("text", 1)])
def test_round_trip(tmp_path, name, fmt, version):
    src = read_ovf(OVF_DIR / name)
    if version == 1 and src.valuedim != 3:
        pytest.skip("OVF 1.0 holds 3-vectors only")
    first = write_ovf(tmp_path / "a.ovf", src.array, src.cell_size, fmt=fmt, version=version, title="field", time_s=2.5e-10)
    back = read_ovf(first)
    expected = src.array.astype(np.float32).astype(np.float64) if fmt == "binary4" else src.array
    np.testing.assert_array_equal(back.array, expected)
    np.testing.assert_allclose(back.cell_size, src.cell_size, rtol=1e-15)
    assert back.time_s == 2.5e-10 and back.version == version
    # Rewriting what was read gives identical bytes.
    second = write_ovf(tmp_path / "b.ovf", back.array, back.cell_size, fmt=fmt, version=version, title="field", time_s=back.time_s)
    assert second.read_bytes() == first.read_bytes()


def test_scalar_and_many_components(tmp_path):
    rng = np.random.default_rng(0)
    scalar = rng.normal(size=(2, 3, 4))
    back = read_ovf(write_ovf(tmp_path / "s.ovf", scalar, (1e-9, 2e-9, 3e-9), fmt="binary8", title="regions"))
    assert back.array.shape == (2, 3, 4, 1) and back.valuelabels == ("regions",)
    np.testing.assert_array_equal(back.array[..., 0], scalar)
    five = rng.normal(size=(1, 2, 3, 5))
    back = read_ovf(write_ovf(tmp_path / "v.ovf", five, (1e-9,) * 3, fmt="text"))
    np.testing.assert_array_equal(back.array, five)


def test_value_multiplier_applied(tmp_path):
    raw = (OVF_DIR / "oommf-ovf1-bin8.omf").read_bytes().replace(b"# valuemultiplier: 1\n", b"# valuemultiplier: 2.5\n")
    (tmp_path / "x.omf").write_bytes(raw)
    np.testing.assert_allclose(read_ovf(tmp_path / "x.omf").array, 2.5 * read_ovf(OVF_DIR / "oommf-ovf1-bin8.omf").array)


def test_format_number_matches_go():
    assert format_number(0.0) == "0"
    assert format_number(5e-07) == "5e-07"
    assert format_number(1.953125e-09) == "1.953125e-09"
    assert format_number(6.000000000000001e-08) == "6.000000000000001e-08"
    assert format_number(3.0) == "3"
    assert format_number(1e16) == "10000000000000000"  # Go keeps plain notation below 1e21
    assert format_number(0.0001) == "0.0001"
    assert format_number(np.float32(0.09950372), np.float32) == "0.09950372"


def test_writer_rejects_bad_input_and_keeps_old_file(tmp_path):
    path = write_ovf(tmp_path / "m.ovf", np.zeros((1, 2, 2, 3)), (1e-9,) * 3)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="shape"):
        write_ovf(path, np.zeros((2, 2)), (1e-9,) * 3)
    with pytest.raises(ValueError, match="cell_size"):
        write_ovf(path, np.zeros((1, 2, 2, 3)), (1e-9, 0, 1e-9))
    with pytest.raises(ValueError, match="format"):
        write_ovf(path, np.zeros((1, 2, 2, 3)), (1e-9,) * 3, fmt="binary2")
    with pytest.raises(ValueError, match="OVF 1.0"):
        write_ovf(path, np.zeros((1, 2, 2, 2)), (1e-9,) * 3, version=1)
    with pytest.raises(FileExistsError):
        write_ovf(path, np.ones((1, 2, 2, 3)), (1e-9,) * 3, overwrite=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.ovf"]  # no temporary files left


# ------------------------------------------------------------------------- malformed files


def corrupt(tmp_path: Path, name: str, edit) -> Path:
    dst = tmp_path / name
    shutil.copy(OVF_DIR / name, dst)
    dst.write_bytes(edit(dst.read_bytes()))
    return dst


def test_wrong_check_value(tmp_path):
    def edit(raw: bytes) -> bytes:
        i = raw.index(b"# Begin: Data Binary 4\n") + len(b"# Begin: Data Binary 4\n")
        return raw[:i] + b"\x00\x00\x80\x3f" + raw[i + 4:]
    path = corrupt(tmp_path, "mumax-bin4-linux.ovf", edit)
    with pytest.raises(OVFError, match=r"mumax-bin4-linux.ovf.*check value"):
        read_ovf(path)


def test_wrong_check_value_binary8(tmp_path):
    def edit(raw: bytes) -> bytes:
        i = raw.index(b"Data Binary 8\n") + len(b"Data Binary 8\n")
        return raw[:i] + b"\x00" * 8 + raw[i + 8:]
    with pytest.raises(OVFError, match="check value"):
        read_ovf(corrupt(tmp_path, "oommf-ovf2-bin8.omf", edit))


@pytest.mark.parametrize("name", ["mumax-bin4-linux.ovf", "oommf-ovf1-bin8.omf", "mumax-txt-linux.ovf"])
def test_truncated_data(tmp_path, name):
    path = corrupt(tmp_path, name, lambda raw: raw[: len(raw) - 400])
    with pytest.raises(OVFError, match="truncated"):
        read_ovf(path)


def test_truncated_header(tmp_path):
    path = corrupt(tmp_path, "mumax-bin4-linux.ovf", lambda raw: raw[:200])
    with pytest.raises(OVFError, match="Begin: Data"):
        read_ovf(path)


def test_unknown_data_format(tmp_path):
    path = corrupt(tmp_path, "mumax-bin4-linux.ovf", lambda raw: raw.replace(b"Data Binary 4", b"Data Binary 2", 1))
    with pytest.raises(OVFError, match="unknown data format 'binary 2'"):
        read_ovf(path)


@pytest.mark.parametrize("key", [b"xnodes", b"zstepsize", b"valuedim", b"meshtype"])
def test_missing_header_key(tmp_path, key):
    path = corrupt(tmp_path, "mumax-bin4-linux.ovf", lambda raw: raw.replace(b"# " + key + b":", b"# other" + key + b":", 1))
    with pytest.raises(OVFError, match=f"missing required header keyword '{key.decode()}'"):
        read_ovf(path)


def test_irregular_and_unknown_meshtype(tmp_path):
    path = corrupt(tmp_path, "oommf-ovf2-bin4.omf", lambda raw: raw.replace(b"meshtype: rectangular", b"meshtype: irregular"))
    with pytest.raises(OVFError, match="irregular.*not supported"):
        read_ovf(path)
    path = corrupt(tmp_path, "oommf-ovf1-bin4.omf", lambda raw: raw.replace(b"rectangular mesh v1.0", b"irregular mesh v1.0", 1))
    with pytest.raises(OVFError, match="irregular"):
        read_ovf(path)
    path = corrupt(tmp_path, "oommf-ovf2-bin8.omf", lambda raw: raw.replace(b"meshtype: rectangular", b"meshtype: hexagonal"))
    with pytest.raises(OVFError, match="unknown meshtype 'hexagonal'"):
        read_ovf(path)


def test_not_an_ovf_file(tmp_path):
    (tmp_path / "x.ovf").write_text("hello\n")
    with pytest.raises(OVFError, match="not an OVF file"):
        read_ovf(tmp_path / "x.ovf")
    with pytest.raises(FileNotFoundError):
        read_ovf(tmp_path / "missing.ovf")


def test_multi_segment_rejected(tmp_path):
    path = corrupt(tmp_path, "mumax-bin4-linux.ovf", lambda raw: raw.replace(b"Segment count: 1", b"Segment count: 2"))
    with pytest.raises(OVFError, match="single-segment"):
        read_ovf(path)
