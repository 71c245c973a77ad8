"""jaxmag.config: TOML -> validated frozen records, errors that name the file and the key."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from jaxmag.config import Config, ConfigError, config_hash, load_config, loads_config, parse_input_spec
from jaxmag.defects import DefectParams
from jaxmag.measures import MeasureOptions
from jaxmag.noise import NoiseSpec, NoiseSweep
from jaxmag.params import ParamError

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_round_trips(path):
    config = load_config(path)
    again = loads_config(config.to_toml(), source="round trip")
    assert again == config and config_hash(again) == config_hash(config)


def test_unknown_key_names_file_and_key(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[grid]\nnx = 8\nnxx = 9\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'grid\.nxx' \(allowed in \[grid\]: .*nx"):
        load_config(path)
    path.write_text("[gird]\nnx = 8\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: unknown key 'gird'"):
        load_config(path)


def test_unknown_key_in_a_variant_names_the_variant(tmp_path):
    (tmp_path / "base.toml").write_text("[grid]\nnx = 8\n")
    (tmp_path / "variant.toml").write_text('base = "base.toml"\n[training]\nepoch = 3\n')
    with pytest.raises(ConfigError, match=r"variant\.toml: unknown key 'training\.epoch'"):
        load_config(tmp_path / "variant.toml")


@pytest.mark.parametrize("text,key,expected", [
    ("[grid]\nnx = 8.5", "grid.nx", "an integer"),
    ("[simulation]\nterms = \"demag\"", "simulation.terms", "an array"),
    ("[material]\nMs = \"big\"", "material.Ms", "a number"),
    ("[grid]\nboundary = \"twisted\"", "grid.boundary", "one of 'open', 'periodic'"),
    ("[grid]\ncell_size_m = [4e-9, 4e-9]", "grid.cell_size_m", "an array of 3 values"),
    ("[noise]\ngaussian = [\"1e-2\"]", "noise.gaussian[0]", "a number"),
])
def test_wrong_type_names_key_and_expected_type(text, key, expected):
    with pytest.raises(ConfigError, match=rf"mine\.toml: key '{re.escape(key)}' must be {re.escape(expected)}"):
        loads_config(text, source="mine.toml")


@pytest.mark.parametrize("text,key", [
    ("[grid]\nnx = 0", "grid.nx"),
    ("[defects]\nsize_min = 40\nsize_max = 10", "defects.size_min"),
    ("[measures]\nnum_states = 1", "measures.num_states"),
    ("[measures]\nfixed_range_z = [0.5, 0.1]", "measures.fixed_range_z"),
    ("[noise]\nspeckle = [0.0]", "noise.speckle"),
    ("[simulation]\nframe_interval_s = 1.5e-13", "simulation.frame_interval_s"),
    ("[simulation]\nsolver = \"leapfrog\"", "simulation.solver"),
    ("[simulation]\nterms = [\"dmi\"]", "simulation.terms"),
    ("[training]\nrecipe = \"fancy\"", "training.recipe"),
    ("[run]\nmodels = [\"mean:q\"]", "run.models"),
    ("[training]\nsplit = [0.5, 0.5, 0.5]", "training.split"),
])
def test_out_of_range_value_is_checked_by_its_section_and_named(text, key):
    with pytest.raises(ConfigError, match=rf"mine\.toml: key '{re.escape(key)}' "):
        loads_config(text, source="mine.toml")


def test_circular_base_is_refused(tmp_path):
    (tmp_path / "a.toml").write_text('base = "b.toml"\n')
    (tmp_path / "b.toml").write_text('base = "a.toml"\n')
    with pytest.raises(ConfigError, match="circular 'base' chain"):
        load_config(tmp_path / "a.toml")
    (tmp_path / "self.toml").write_text('base = "self.toml"\n')
    with pytest.raises(ConfigError, match="circular"):
        load_config(tmp_path / "self.toml")


def test_base_chain_merges_tables_key_by_key(tmp_path):
    (tmp_path / "base.toml").write_text("[grid]\nnx = 8\nny = 12\n[training]\nepochs = 3\n")
    (tmp_path / "mid.toml").write_text('base = "base.toml"\n[grid]\nny = 10\n')
    (tmp_path / "top.toml").write_text('base = "mid.toml"\nname = "top"\n[training]\nepochs = 5\n')
    c = load_config(tmp_path / "top.toml")
    assert (c.grid.nx, c.grid.ny, c.training.epochs, c.name) == (8, 10, 5, "top")
    assert loads_config(c.to_toml()) == c


def test_sections_are_the_layers_own_records():
    c = Config()
    assert isinstance(c.defects, DefectParams) and isinstance(c.noise, NoiseSweep)
    opts = loads_config("[measures]\nbinning = 'fixed'\nfixed_range_x = [0.8, 1.0]").measures
    assert opts.options("x") == MeasureOptions(binning="fixed", fixed_range=(0.8, 1.0))
    assert opts.options("z").fixed_range == (-1.0, 1.0)
    assert hash(opts.options("x")) == hash(MeasureOptions(binning="fixed", fixed_range=(0.8, 1)))
    assert c.noise.specs()[0] == NoiseSpec("gaussian", 1e-4)
    # a record built in Python is checked too, with the field named
    with pytest.raises(ParamError, match="size_min"):
        DefectParams(size_min=0)


def test_noise_lists_levels_per_kind(tmp_path):
    """[noise]: a key per noise kind with its levels; none listed keeps the default sweep; an
    empty list drops a kind that the base config lists; the 0.1.0 keys name the new form."""
    quick = load_config(Path(__file__).resolve().parents[1] / "configs" / "quick.toml")
    assert [s.name for s in quick.noise.specs()] == ["gaussian_1e-4", "gaussian_1e-2", "speckle_1e-4", "speckle_1e-2"]
    assert loads_config("[noise]\nseed = 4").noise == NoiseSweep(seed=4)
    (tmp_path / "base.toml").write_text("[noise]\ngaussian = [1e-2]\nspeckle = [1e-2, 1e-1]\n")
    (tmp_path / "variant.toml").write_text('base = "base.toml"\n[noise]\nspeckle = []\n')
    assert load_config(tmp_path / "variant.toml").noise.kinds == ("gaussian",)
    with pytest.raises(ConfigError, match=r"mine\.toml: key 'noise\.types' is gone: .* gaussian = \[1e-4, 1e-2\]"):
        loads_config('[noise]\ntypes = ["gaussian"]', source="mine.toml")
    with pytest.raises(ConfigError, match=r"unknown key 'noise\.poisson' \(allowed in \[noise\]: seed and the noise "
                                          r"kinds gaussian, speckle, shot\)"):
        loads_config("[noise]\npoisson = [100.0]")


def test_config_hash_follows_sections():
    a, b = Config(), Config().replace(training=Config().training.__class__(epochs=3))
    assert config_hash(a) != config_hash(b)
    assert config_hash(a, "grid", "simulation") == config_hash(b, "grid", "simulation")


def test_input_specs_parse_to_channels():
    (ch,) = parse_input_spec("std:z")
    assert (ch.measure, ch.component, ch.name) == ("std", "z", "std:z") and ch == ("std", "z")
    with pytest.raises(ConfigError, match="invalid input spec"):
        parse_input_spec("mean:x,median:z")


def test_configs_stored_by_an_earlier_version_still_load():
    """A dataset or run folder written by jaxmag 0.1 stores ``[simulation] demag`` and ``[noise]
    types`` x ``variances``: its stored config reads as today's form, while a user's config file
    with those keys gets the error naming the new form."""
    from jaxmag.config import stored_config

    stored = stored_config('[simulation]\ndemag = false\n[noise]\ntypes = ["speckle"]\nvariances = [1e-3]\nseed = 3\n')
    assert "demag" not in stored.simulation.terms and "exchange" in stored.simulation.terms
    assert [s.name for s in stored.noise.specs()] == ["speckle_1e-3"] and stored.noise.seed == 3
    assert stored_config("[simulation]\ndemag = true\n").simulation.terms == stored_config("").simulation.terms
    with pytest.raises(ConfigError, match="'simulation.demag' is gone"):
        loads_config("[simulation]\ndemag = true\n")
