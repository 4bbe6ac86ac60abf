import numpy as np
import pytest

from zero1to3 import data


def test_composite_on_white_known_values():
    rgba = np.array([[[255, 0, 0, 255], [0, 0, 255, 0], [0, 0, 0, 128]]], np.uint8)
    out = data.composite_on_white(rgba)
    np.testing.assert_allclose(out[0, 0], [1, 0, 0])  # opaque red stays red
    np.testing.assert_allclose(out[0, 1], [1, 1, 1])  # transparent becomes white, whatever its RGB
    np.testing.assert_allclose(out[0, 2], [1 - 128 / 255] * 3, atol=1e-6)  # half-transparent black is grey


def test_missing_manifest_and_object_errors_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="run stage 01"):
        data.read_manifest(tmp_path)
    with pytest.raises(FileNotFoundError, match="urdf_001"):
        data.load_object(tmp_path, "urdf_001")
