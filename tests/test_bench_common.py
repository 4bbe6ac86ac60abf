"""benchmarks/_common.py: the synthetic views and bare-step timing that bench_train and bench_vae share."""

import numpy as np
import pytest
import torch

from conftest import load_script


@pytest.fixture(scope="module")
def common():
    return load_script("benchmarks/_common.py")


def test_synthetic_views_are_seeded_and_square_alpha_frames_each_view(common):
    views = common.synthetic_views(3, 2, 16, seed=0, square_alpha=True)
    again = common.synthetic_views(3, 2, 16, seed=0, square_alpha=True)
    assert views.object_ids == ["o0", "o1", "o2"] and views.rgba.shape == (3, 2, 16, 16, 4)
    assert np.array_equal(views.rgba, again.rgba) and np.array_equal(views.camera_centers, again.camera_centers)
    alpha = views.rgba[..., 3]
    assert set(np.unique(alpha)) == {0, 255} and (alpha[:, :, 0, :] == 0).all()  # transparent at the borders
    assert (alpha[:, :, 7:9, 7:9] == 255).all()  # opaque at the centre
    random_alpha = common.synthetic_views(3, 2, 16, seed=0).rgba[..., 3]
    assert len(np.unique(random_alpha)) > 2


def test_optimizer_step_times_times_each_step_and_steps(common):
    weight = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.SGD([weight], lr=0.5)
    times = common.optimizer_step_times(optimizer, lambda: (weight**2).sum(), steps=2)
    assert len(times) == 2 and all(t >= 0 for t in times)
    torch.testing.assert_close(weight.detach(), torch.zeros(3))  # w - 0.5 * 2w = 0 after the first step
