import pytest
import yaml

from conftest import REPO
from zero1to3.config import RenderConfig


def test_params_yaml_render_group_builds_a_config():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    cfg = RenderConfig.from_dict(params["render"])
    assert cfg.num_train >= 300 and cfg.num_views == 12  # the default scale
    assert RenderConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_is_an_error_listing_valid_keys(tiny_render_cfg):
    values = tiny_render_cfg.to_dict() | {"num_trian": 5}
    with pytest.raises(ValueError, match=r"unknown RenderConfig keys \['num_trian'\]; valid keys: \['seed'"):
        RenderConfig.from_dict(values)


def test_missing_key_is_an_error(tiny_render_cfg):
    values = tiny_render_cfg.to_dict()
    del values["seed"]
    with pytest.raises(ValueError, match=r"missing RenderConfig keys \['seed'\]"):
        RenderConfig.from_dict(values)


@pytest.mark.parametrize("field", ["num_views", "resolution_px", "samples_per_pixel", "num_workers"])
def test_nonsense_values_are_rejected(tiny_render_cfg, field):
    with pytest.raises(ValueError, match=field):
        RenderConfig.from_dict(tiny_render_cfg.to_dict() | {field: 0})


def test_render_settings_change_with_image_settings_only(tiny_render_cfg):
    import dataclasses

    assert dataclasses.replace(tiny_render_cfg, num_train=99).render_settings() == tiny_render_cfg.render_settings()
    assert dataclasses.replace(tiny_render_cfg, seed=1).render_settings() != tiny_render_cfg.render_settings()
