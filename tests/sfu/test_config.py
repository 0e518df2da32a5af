"""``SfuConfig`` repeats the defaults of ``[sfu]`` / ``[ice]`` (config/settings.py and the
shipped config/default.toml): they agree.

The SFU imports nothing from ``config`` (it is a library the web layer configures), so the
defaults are written twice; this test is what keeps them one rule.
"""

from __future__ import annotations

import dataclasses
import tomllib
from typing import Any

import pytest

from config.settings import DEFAULT_CONFIG_FILE, IceSettings, SfuSettings
from peerlearn_sfu import SfuConfig

#: SfuConfig fields with no setting: worker and test/benchmark knobs set by code.
SFU_ONLY = {"worker_index", "use_ipv6", "lean_send_loop"}
#: Where the two differ on purpose, and why.
DIFFERENT_ON_PURPOSE = {
    # The operator default is single-port mode on 40000 ([sfu] udp_port); a bare
    # SfuConfig() (tests, benchmark, embedding) is range mode, so that it binds no fixed
    # port that another process may hold.
    "udp_port": (40000, 0),
}

_FIELDS = {f.name: f for f in dataclasses.fields(SfuConfig)}
_SETTINGS: dict[str, Any] = {
    **{name: f.default for name, f in IceSettings.model_fields.items()},
    **{name: f.default for name, f in SfuSettings.model_fields.items()},
}


def test_every_config_field_has_a_setting_or_is_listed():
    assert set(_FIELDS) - set(_SETTINGS) == SFU_ONLY
    assert set(_SETTINGS) - set(_FIELDS) == set()


@pytest.mark.parametrize("name", sorted(set(_FIELDS) - SFU_ONLY))
def test_config_default_equals_the_setting_default(name):
    default = _FIELDS[name].default
    setting = _SETTINGS[name]
    if name in DIFFERENT_ON_PURPOSE:
        assert (setting, default) == DIFFERENT_ON_PURPOSE[name]
    else:
        assert default == setting, f"SfuConfig.{name} = {default!r}, [sfu] {name} = {setting!r}"


def test_a_config_built_from_default_settings_is_the_default_config():
    sfu, ice = SfuSettings(), IceSettings()
    built = SfuConfig(
        **{name: getattr(sfu, name) for name in SfuSettings.model_fields},
        **{name: getattr(ice, name) for name in IceSettings.model_fields},
    )
    expected = SfuConfig(udp_port=DIFFERENT_ON_PURPOSE["udp_port"][0])
    assert built == expected


def _shipped() -> dict[str, Any]:
    with DEFAULT_CONFIG_FILE.open("rb") as f:
        data = tomllib.load(f)
    return {**data["ice"], **data["sfu"]}


@pytest.mark.parametrize("name", sorted(_shipped()))
def test_config_default_equals_the_shipped_default_toml(name):
    value = _shipped()[name]
    value = tuple(value) if isinstance(value, list) else value
    default = _FIELDS[name].default
    if name in DIFFERENT_ON_PURPOSE:
        assert (value, default) == DIFFERENT_ON_PURPOSE[name]
    else:
        assert default == value, f"SfuConfig.{name} = {default!r}, default.toml {value!r}"
