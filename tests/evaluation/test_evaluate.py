"""Stage 05 library: known answers on tiny fake outputs (solid squares on white, concentric spheres, fixed arrays)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh

from conftest import REPO
from zero1to3.core import files
from zero1to3.dataset import data
from zero1to3.evaluation import evaluate, perceptual, pixel_metrics, report

PAPER_RESULTS = REPO / "docs" / "paper-results.md"  # committed: the test runs everywhere, never skips
H = 8  # image side: the SSIM window shrinks to 7, still the default


def _rgba_square(top: int, left: int, side: int, color: tuple[int, int, int]) -> np.ndarray:
    """Transparent (H, H, 4) render with one opaque square: composites to white + a solid square."""
    rgba = np.zeros((H, H, 4), dtype=np.uint8)
    rgba[top : top + side, left : left + side] = (*color, 255)
    return rgba


@pytest.fixture
def views() -> dict[str, np.ndarray]:
    """3 objects x 2 target views; object 0's targets are its input view (so copying the input is perfect)."""
    blue = (0, 120, 255)
    inputs = np.stack(
        [_rgba_square(1, 1, 4, (0, 0, 0)), _rgba_square(2, 2, 3, (200, 0, 0)), _rgba_square(0, 4, 4, blue)]
    )
    targets = np.stack(
        [
            np.stack([inputs[0], inputs[0]]),
            np.stack([_rgba_square(4, 4, 4, (0, 0, 0)), _rgba_square(0, 0, 4, (0, 0, 0))]),
            np.stack([_rgba_square(3, 3, 4, (0, 0, 0)), _rgba_square(2, 0, 4, (0, 0, 0))]),
        ]
    )  # (3, 2, H, H, 4): every target a black 4x4 square
    return {"input": inputs, "target": targets}


def _on_white_uint8(rgba: np.ndarray) -> np.ndarray:
    # alpha is 0 or 255 here, so compositing is exact in 8 bits
    return np.round(data.composite_on_white(rgba) * 255.0).astype(np.uint8)


def _scores(views: dict[str, np.ndarray], **predictions: np.ndarray) -> evaluate.Scores:
    return evaluate.novel_view_scores(predictions, views["target"], views["input"], ["o0", "o1", "o2"])


# --- novel views ----------------------------------------------------------------------------------------------------


def test_perfect_prediction_is_inf_psnr_and_full_silhouette(views) -> None:
    scores = _scores(views, zero123=_on_white_uint8(views["target"]))
    assert list(scores) == ["zero123", "copy_input", "all_white"]
    perfect = scores["zero123"]
    assert set(perfect) == {"psnr", "ssim", "fg_psnr", "silhouette_iou"}  # no lpips without a model
    assert all(v.shape == (3,) for v in perfect.values())
    # pixel_metrics.image_metrics: identical images have PSNR inf (never nan); kept per object, counted in summaries
    assert np.all(perfect["psnr"] == math.inf) and np.all(perfect["fg_psnr"] == math.inf)
    np.testing.assert_allclose(perfect["ssim"], 1.0)
    np.testing.assert_array_equal(perfect["silhouette_iou"], 1.0)


def test_copy_input_is_the_input_view_and_all_white_has_analytic_scores(views) -> None:
    scores = _scores(views, zero123=_on_white_uint8(views["target"]))
    copy = scores["copy_input"]
    assert copy["psnr"][0] == math.inf and copy["silhouette_iou"][0] == 1.0  # object 0: targets are the input
    expected = pixel_metrics.image_metrics(
        np.repeat(data.composite_on_white(views["input"][1:2]).astype(np.float64), 2, axis=0),
        data.composite_on_white(views["target"][1]).astype(np.float64),
    )
    assert copy["psnr"][1] == pytest.approx(expected["psnr"]) and copy["ssim"][1] == pytest.approx(expected["ssim"])
    white = scores["all_white"]
    # every target is a black 4x4 square on 8x8 white: MSE 16/64 -> 10 log10(4) dB; inside the square MSE 1 -> 0 dB
    np.testing.assert_allclose(white["psnr"], 10.0 * math.log10(4.0))
    np.testing.assert_allclose(white["fg_psnr"], 0.0, atol=1e-12)
    np.testing.assert_array_equal(white["silhouette_iou"], 0.0)


def test_lpips_is_scored_only_with_a_model(views) -> None:
    class MeanAbs(torch.nn.Module):  # stands in for lpips.LPIPS: same call signature, known values
        def forward(self, a: torch.Tensor, b: torch.Tensor, normalize: bool) -> torch.Tensor:
            return (a - b).abs().mean(dim=(1, 2, 3), keepdim=True)

    fake = perceptual.LpipsModel(net=MeanAbs(), backbone_file=Path("alexnet.pth"))
    preds = {"zero123": _on_white_uint8(views["target"])}
    scores = evaluate.novel_view_scores(preds, views["target"], views["input"], ["a", "b", "c"], lpips_model=fake)
    np.testing.assert_allclose(scores["zero123"]["lpips"], 0.0)
    np.testing.assert_allclose(scores["all_white"]["lpips"], 3 * 16 / (3 * 64))  # |1 - 0| on 16 of 64 pixels
    unavailable = perceptual.MetricUnavailable("lpips", "no weights", "/nowhere")
    scores = evaluate.novel_view_scores(preds, views["target"], views["input"], ["a", "b", "c"], unavailable)
    assert "lpips" not in scores["zero123"]


def test_st_lpips_is_scored_beside_lpips_only_with_its_model(views) -> None:
    class MeanSquare(torch.nn.Module):  # stands in for stlpips.LPIPS: same call signature, known values
        def forward(self, a: torch.Tensor, b: torch.Tensor, normalize: bool) -> torch.Tensor:
            return ((a - b) ** 2).mean(dim=(1, 2, 3), keepdim=True)

    fake = perceptual.StLpipsModel(net=MeanSquare(), weights_file=Path("alex_shift_tolerant.pth"))
    preds = {"zero123": _on_white_uint8(views["target"])}
    scores = evaluate.novel_view_scores(preds, views["target"], views["input"], ["a", "b", "c"], st_lpips_model=fake)
    assert "st_lpips" in scores["zero123"] and "lpips" not in scores["zero123"]
    np.testing.assert_allclose(scores["zero123"]["st_lpips"], 0.0)
    np.testing.assert_allclose(scores["all_white"]["st_lpips"], 16 / 64)  # (1 - 0)^2 on 16 of 64 pixels
    rows = evaluate.paired_comparisons(scores, "zero123", ["all_white"], ["st_lpips"], seed=0)
    assert rows[0]["difference"] == "all_white - zero123" and rows[0]["mean_difference"] == pytest.approx(0.25)


def test_scored_metrics_follow_the_available_models() -> None:
    unavailable = perceptual.MetricUnavailable("st_lpips", "not installed", "/nowhere")
    lpips_model = perceptual.LpipsModel(net=torch.nn.Identity(), backbone_file=Path("alexnet.pth"))
    st_model = perceptual.StLpipsModel(net=torch.nn.Identity(), weights_file=Path("alex.pth"))
    assert evaluate.scored_metrics(["psnr", "st_lpips"], unavailable, unavailable) == ["psnr"]
    assert evaluate.scored_metrics(["psnr", "st_lpips"], lpips_model, st_model) == ["psnr", "st_lpips", "lpips"]


def _mean_colour_inception() -> perceptual.FidInception:
    class MeanColour(torch.nn.Module):  # stands in for the Inception trunk: 3 informative features of 2048
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out = torch.zeros(len(x), 2048)
            out[:, :3] = x.mean(dim=(2, 3))
            return out

    return perceptual.FidInception(net=perceptual.InceptionFeatures(MeanColour()), weights_file=Path("stand-in.pt"))


def test_fid_scores_every_method_and_control_per_set_and_pooled(views) -> None:
    held_out = _held_out(views, [[10.0, 100.0], [50.0, 60.0], [20.0, 180.0]])
    truth = _on_white_uint8(views["target"])
    predictions = {"zero123": truth, "no_pose": np.full_like(truth, 128)}
    inception = _mean_colour_inception()
    fid = evaluate.fid_scores({"test": (held_out, predictions), "zero_shot": (held_out, predictions)}, inception)
    methods = ["zero123", "no_pose", "copy_input", "all_white"]
    assert sorted(fid) == sorted(f"{s}/{m}" for s in ("test", "zero_shot", "all") for m in methods)
    assert fid["test/zero123"] == pytest.approx(0.0, abs=1e-9)
    truth_images = held_out.target_rgb.reshape(-1, H, H, 3)
    copies = np.repeat(held_out.input_rgb, 2, axis=0)  # the input view once per target, as copy_input predicts
    expected = perceptual.frechet_distance(
        perceptual.fid_features(copies, inception), perceptual.fid_features(truth_images, inception)
    )
    assert fid["test/copy_input"] == pytest.approx(expected, rel=1e-9)
    assert fid["all/no_pose"] > fid["all/zero123"]


def test_novel_view_inputs_are_checked(views) -> None:
    good = _on_white_uint8(views["target"])
    with pytest.raises(ValueError, match="reserved"):
        _scores(views, copy_input=good)
    with pytest.raises(ValueError, match="distinct ids"):
        evaluate.novel_view_scores({"m": good}, views["target"], views["input"], ["a", "a", "b"])
    with pytest.raises((ValueError, TypeError)):  # the jaxtyping hook (tests) or the function's own check
        _scores(views, zero123=good[:, :1])


# --- statistics -----------------------------------------------------------------------------------------------------


def _two_methods() -> evaluate.Scores:
    base = np.linspace(10.0, 20.0, 12)
    gain = np.random.default_rng(0).uniform(0.5, 1.5, 12)  # better on every object
    return {
        "zero123": {"psnr": base + gain, "lpips": 0.5 - 0.01 * gain},
        "no_pose": {"psnr": base, "lpips": np.full(12, 0.5)},
    }


def test_paired_comparison_positive_means_reference_better_for_both_directions() -> None:
    rows = evaluate.paired_comparisons(_two_methods(), "zero123", ["no_pose"], ["psnr", "lpips"], seed=0)
    psnr, lpips = rows
    assert psnr["difference"] == "zero123 - no_pose" and psnr["higher_is_better"]
    assert lpips["difference"] == "no_pose - zero123" and not lpips["higher_is_better"]
    for row in rows:
        assert 0.0 < row["ci_low"] < row["mean_difference"] < row["ci_high"]
        assert row["ci_excludes_zero"] and row["verdict"] == "reference better"
        assert row["num_reference_better"] == 12 and row["num_objects"] == 12 and row["num_excluded"] == 0
    gains = _two_methods()["zero123"]["psnr"] - _two_methods()["no_pose"]["psnr"]
    assert psnr["mean_difference"] == pytest.approx(gains.mean())
    assert lpips["mean_difference"] == pytest.approx(0.01 * gains.mean())
    flipped = evaluate.paired_comparisons(_two_methods(), "no_pose", ["zero123"], ["psnr", "lpips"], seed=0)
    assert all(r["ci_high"] < 0.0 and r["verdict"] == "other better" for r in flipped)


def test_paired_comparison_excludes_non_finite_objects_and_counts_them() -> None:
    scores = _two_methods()
    scores["zero123"]["psnr"][[0, 3]] = math.inf  # two perfect objects
    (row,) = evaluate.paired_comparisons(scores, "zero123", ["no_pose"], ["psnr"], seed=0)
    assert row["num_excluded"] == 2 and row["num_objects"] == 10
    few = {m: {"psnr": v["psnr"][:3].copy()} for m, v in _two_methods().items()}
    few["no_pose"]["psnr"][:2] = math.nan
    (row,) = evaluate.paired_comparisons(few, "zero123", ["no_pose"], ["psnr"], seed=0)
    assert row["verdict"] == "too few objects" and math.isnan(row["mean_difference"]) and not row["ci_excludes_zero"]
    with pytest.raises(ValueError, match="unknown metric 'mse'"):
        evaluate.paired_comparisons(_two_methods(), "zero123", ["no_pose"], ["mse"], seed=0)
    with pytest.raises(ValueError, match="no scores for method 'shuffled_pose'"):
        evaluate.paired_comparisons(_two_methods(), "zero123", ["shuffled_pose"], ["psnr"], seed=0)


def test_best_and_worst_follow_metric_direction_and_rank_failures_last() -> None:
    scores = {"sjc": {"volumetric_iou": np.array([0.2, 0.9, 0.5, 0.0]), "chamfer": np.array([0.3, 0.1, 0.2, np.nan])}}
    best, worst = evaluate.best_and_worst(scores, "sjc", "volumetric_iou", 2)
    assert best.tolist() == [1, 2] and worst.tolist() == [3, 0]
    best, worst = evaluate.best_and_worst(scores, "sjc", "chamfer", 1)  # lower is better; nan = failed = worst
    assert best.tolist() == [1] and worst.tolist() == [3]
    best, worst = evaluate.best_and_worst(scores, "sjc", "chamfer", 10)  # capped at N
    assert best.tolist() == [1, 2, 0, 3] and worst.tolist() == [3, 0, 2, 1]
    with pytest.raises(ValueError, match="`k` must be >= 1"):
        evaluate.best_and_worst(scores, "sjc", "chamfer", 0)


def test_summary_rows_give_mean_and_ci_and_state_exclusions() -> None:
    scores = {"zero123": {"psnr": np.array([14.0, 16.0, math.inf]), "ssim": np.array([0.3, 0.3, 0.3])}}
    (row,) = report.summary_rows(scores, seed=0, num_resamples=500)
    assert row["method"] == "zero123"
    mean, rest = row["psnr"].split(" [")
    assert mean == "15.00" and rest.endswith("] (1 inf excluded)")
    low, high = (float(x) for x in rest.split("]")[0].split(", "))
    assert 14.0 <= low <= 15.0 <= high <= 16.0
    assert row["ssim"] == "0.300 [0.300, 0.300]"
    stats = evaluate.summary_stats(scores, ["psnr"], seed=0, num_resamples=500)
    assert stats["zero123"]["psnr"]["num_objects"] == 2 and stats["zero123"]["psnr"]["num_inf"] == 1


def test_markdown_table_formats_floats_and_escapes_pipes() -> None:
    rows = [{"method": "a|b", "psnr": 14.8213, "n": 3}, {"method": "c", "psnr": math.inf, "n": 4}]
    table = report.markdown_table(rows, ["method", "psnr"], decimals=2)
    assert table == "| method | psnr |\n|---|---|\n| a\\|b | 14.82 |\n| c | inf |\n"
    with pytest.raises(ValueError, match=r"row 0 has no column\(s\) \['ssim'\]"):
        report.markdown_table(rows, ["method", "ssim"])


def test_per_object_rows_select_objects_and_name_columns() -> None:
    scores = _two_methods()
    ids = [f"o{i}" for i in range(12)]
    rows = report.per_object_rows(scores, ids, ["psnr"], indices=np.array([3, 0]))
    assert [r["object"] for r in rows] == ["o3", "o0"]
    assert rows[1] == {"object": "o0", "zero123/psnr": scores["zero123"]["psnr"][0], "no_pose/psnr": 10.0}
    assert report.markdown_table(rows, ["object", "no_pose/psnr"]).splitlines()[2] == "| o3 | 12.727 |"


# --- 3D reconstruction ----------------------------------------------------------------------------------------------


def test_reconstruction_scores_of_spheres_and_failures(tmp_path) -> None:
    def sphere(name: str, radius: float, suffix: str = ".ply") -> Path:
        path = tmp_path / f"{name}{suffix}"
        trimesh.creation.icosphere(subdivisions=4, radius=radius).export(path)
        return path

    gt = {"a": sphere("gt_a", 0.3, ".obj"), "b": sphere("gt_b", 0.3, ".obj")}  # as data/renders/<id>/mesh.obj
    empty = tmp_path / "empty.ply"
    trimesh.Trimesh().export(empty)
    zero_bytes = tmp_path / "zero.ply"
    zero_bytes.touch()
    meshes = {
        "sjc": {"a": sphere("sjc_a", 0.4), "b": sphere("sjc_b", 0.3)},
        "sjc_i": {"b": zero_bytes},  # "a" not listed
        "broken": {"a": empty, "b": tmp_path / "not_written.ply"},
    }
    scores = evaluate.reconstruction_scores(meshes, gt, seed=0, num_points=5000)  # default 64^3 IoU grid
    sjc = scores["sjc"]
    # concentric spheres: IoU = (0.3 / 0.4)^3; every nearest point is 0.1 away along the radius
    assert sjc["volumetric_iou"][0] == pytest.approx(0.421875, abs=0.02)
    assert sjc["volumetric_iou"][1] == pytest.approx(1.0, abs=1e-6)
    assert sjc["chamfer"][0] == pytest.approx(0.1, abs=0.005) and sjc["chamfer_sum"][0] == pytest.approx(0.2, abs=0.01)
    assert sjc["chamfer"][1] < 0.02 and not sjc["failed"].any()
    for method in ("sjc_i", "broken"):
        assert scores[method]["failed"].tolist() == [True, True]
        np.testing.assert_array_equal(scores[method]["volumetric_iou"], 0.0)
        assert np.isnan(scores[method]["chamfer"]).all()
    flat = report.flat_metrics(reconstruction={"test": scores})
    assert flat["reconstruction/test/sjc_i/num_failed"] == 2.0 and flat["reconstruction/test/sjc/num_failed"] == 0.0
    assert flat["reconstruction/test/sjc_i/volumetric_iou"] == 0.0  # failures count as IoU 0 in the mean
    assert "reconstruction/test/sjc_i/chamfer" not in flat  # no finite value: dropped and counted
    assert flat["reconstruction/test/num_dropped_nonfinite"] == 4.0  # chamfer, chamfer_sum of sjc_i and broken


def test_reconstruction_input_errors(tmp_path) -> None:
    gt = tmp_path / "gt.ply"
    trimesh.creation.box(extents=(0.5, 0.5, 0.5)).export(gt)
    bad = tmp_path / "bad.ply"
    bad.write_text("not a mesh")
    with pytest.raises(ValueError, match="could not read the predicted mesh"):
        evaluate.reconstruction_scores({"sjc": {"a": bad}}, {"a": gt}, seed=0, num_points=100, resolution=8)
    with pytest.raises(ValueError, match=r"without ground truth: \['z'\]"):
        evaluate.reconstruction_scores({"sjc": {"z": gt}}, {"a": gt}, seed=0)
    with pytest.raises(FileNotFoundError, match="ground-truth mesh of 'a'"):
        evaluate.reconstruction_scores({"sjc": {}}, {"a": tmp_path / "missing.ply"}, seed=0)


# --- paper tables and flat metrics ----------------------------------------------------------------------------------


def test_paper_tables_parse_the_reference_file() -> None:
    tables = report.paper_tables(PAPER_RESULTS)
    assert len(tables) == 4

    def find(value: str) -> tuple[str, dict[str, str]]:
        (hit,) = [(title, row) for title, rows in tables.items() for row in rows if value in row.values()]
        return hit

    title, row = find("18.378")
    assert "Novel view synthesis" in title and "GSO" in title
    assert row == {"Method": "Zero-1-to-3", "PSNR ↑": "18.378", "SSIM ↑": "0.877", "LPIPS ↓": "0.088", "FID ↓": "0.027"}
    title, row = find("0.5052")
    assert "3D reconstruction" in title and row["Method"] == "Zero-1-to-3 (+SJC)" and row["CD ↓"] == "0.0717"
    assert find("0.1230 [C]")[1]["Method"] == "MCC"  # source tags are kept
    assert [r["Method"] for r in tables[find("10.405")[0]]] == ["DietNeRF", "Image Variation", "SJC-I", "Zero-1-to-3"]


def test_paper_tables_round_trip_markdown_table(tmp_path) -> None:
    rows = [{"Method": "a|b", "PSNR ↑": "1.5"}, {"Method": "**c**", "PSNR ↑": "2"}]
    table = report.markdown_table(rows, ["Method", "PSNR ↑"])
    path = tmp_path / "r.md"
    path.write_text(f"# Results\n\n{table}\nText.\n\n{table}\n## Other\n| x |\n|:--|\n| 1 |\n")
    tables = report.paper_tables(path)
    assert list(tables) == ["Results", "Results (2)", "Other"]
    assert tables["Results"] == [{"Method": "a|b", "PSNR ↑": "1.5"}, {"Method": "c", "PSNR ↑": "2"}]
    assert tables["Other"] == [{"x": "1"}]
    with pytest.raises(FileNotFoundError):
        report.paper_tables(tmp_path / "missing.md")


def test_flat_metrics_are_json_safe_and_named(views, tmp_path) -> None:
    preds = {"zero123": _on_white_uint8(views["target"]), "no_pose": np.full_like(views["target"][..., :3], 128)}
    scores = _scores(views, **preds)  # zero123 is perfect: PSNR inf on every object
    comparisons = evaluate.paired_comparisons(scores, "zero123", ["no_pose"], ["ssim", "silhouette_iou"], seed=0)
    fake_lpips = {m: v | {"lpips": np.array([0.1, 0.2, 0.3]) * (m != "zero123")} for m, v in scores.items()}
    comparisons += evaluate.paired_comparisons(fake_lpips, "zero123", ["no_pose"], ["lpips", "psnr"], seed=0)
    flat = report.flat_metrics(
        novel_view={"test": scores, "zero_shot": scores}, novel_view_comparisons={"test": comparisons}
    )
    json.dumps(flat, allow_nan=False)
    files.write_metrics(tmp_path / "evaluate.json", flat)  # the project's writer: finite numbers only
    assert all(isinstance(v, float) and math.isfinite(v) for v in flat.values())
    assert "novel_view/zero_shot/zero123/psnr" not in flat and flat["novel_view/zero_shot/zero123/num_nonfinite"] == 6
    assert flat["novel_view/zero_shot/zero123/silhouette_iou"] == 1.0
    assert flat["novel_view/test/zero123_minus_no_pose/ssim"] > 0.0
    assert flat["novel_view/test/no_pose_minus_zero123/lpips"] == pytest.approx(0.2)  # lower is better: flipped
    assert "novel_view/test/zero123_minus_no_pose/psnr" not in flat  # no finite pair
    # dropped: zero123's psnr and fg_psnr means (inf on every object) and the psnr comparison's mean and CI
    assert flat["novel_view/test/num_dropped_nonfinite"] == 2 + 3
    assert flat["novel_view/test/num_objects"] == 3
    with pytest.raises(ValueError, match="lowercase"):
        report.flat_metrics(novel_view={"Test/1": scores})


@pytest.mark.parametrize(
    "verdict, low, high, robust",
    [
        ("reference better", 0.34, 0.64, True),
        ("reference better", 0.05, 0.9, False),  # a rerun elsewhere may move the low end below zero
        ("other better", -0.9, -0.25, True),
        ("no clear difference", -0.04, 1.38, False),  # the zero-shot claim of the committed study: borderline
        ("no clear difference", -0.17, 0.22, False),  # the test set's tie with copy-input: could read otherwise
        ("no clear difference", -0.3, 0.25, True),
    ],
)
def test_a_verdict_is_robust_only_if_the_measured_rerun_spread_cannot_turn_it(verdict, low, high, robust):
    row = {
        "verdict": verdict,
        "ci_low": low,
        "ci_high": high,
        "metric": "fg_psnr",
        "mean_difference": 0.0,
        "reference": "zero123",
        "other": "no_pose",
        "num_objects": 7,
    }
    assert evaluate.robust_to_reruns(row, evaluate.REPRODUCTION_TOLERANCE["fg_psnr"]) is robust
    assert evaluate.robust_to_reruns(row, None) is None
    row["robust"] = robust
    (line,) = report.claim_lines({"zero_shot": [row]}, {})
    assert ("borderline" in line) is (not robust)


# --- by camera angle ------------------------------------------------------------------------------------------------


def _held_out(views: dict[str, np.ndarray], target_angles_deg: list[list[float]]):
    """The fixture's views with an input camera on +Z and targets at the given angles from it."""
    from zero1to3.core import outputs

    angles = np.radians(np.array(target_angles_deg))  # (N, T)
    targets = 2.0 * np.stack([np.sin(angles), np.zeros_like(angles), np.cos(angles)], axis=-1)
    return outputs.HeldOutViews(
        ["o0", "o1", "o2"],
        0,
        np.array([1, 2]),
        views["input"],
        views["target"],
        np.tile([0.0, 0.0, 2.0], (3, 1)),
        targets,
    )


def test_camera_angles_are_between_the_camera_directions():
    inputs = np.array([[0.0, 0.0, 2.0], [1.5, 0.0, 0.0]])
    targets = np.array([[[0.0, 0.0, 1.5], [0.0, 2.2, 0.0]], [[-1.5, 0.0, 0.0], [1.0, 1.0, 0.0]]])
    np.testing.assert_allclose(evaluate.camera_angles(inputs, targets), [[0.0, 90.0], [180.0, 45.0]], atol=1e-9)


def test_scores_by_angle_average_the_views_of_each_bin_per_object(views):
    held_out = _held_out(views, [[10.0, 100.0], [50.0, 60.0], [20.0, 180.0]])
    truth = _on_white_uint8(views["target"])
    white = np.full_like(truth, 255)
    by_angle = evaluate.scores_by_angle({"zero123": truth, "no_pose": white}, held_out)
    assert list(by_angle) == ["0_45", "45_90", "90_180"]
    assert [len(b["zero123"]["fg_psnr"]) for b in by_angle.values()] == [2, 1, 2]  # objects with a view in the bin
    assert np.all(np.isinf(by_angle["0_45"]["zero123"]["fg_psnr"]))  # the truth itself: perfect
    assert np.all(by_angle["90_180"]["no_pose"]["silhouette_iou"] == 0.0)  # all white: no silhouette
    copy = by_angle["45_90"]["copy_input"]["fg_psnr"][0]  # object 1, both its views in 45-90
    inputs = np.broadcast_to(data.composite_on_white(views["input"][1]), (2, H, H, 3))
    assert copy == pytest.approx(
        pixel_metrics.foreground_psnr(inputs, data.composite_on_white(views["target"][1]))["foreground_psnr"]
    )
    samples = {"test": (held_out, {"zero123": truth, "no_pose": white})}
    scores, comparisons = evaluate.evaluate_by_angle(samples, "zero123", seed=0, num_resamples=200)
    assert set(comparisons["test"]) == {"0_45", "90_180"}  # 45-90 has one object: no interval
    flat = report.flat_metrics(by_angle=scores, by_angle_comparisons=comparisons)
    assert flat["novel_view_by_angle/test/45_90/num_objects"] == 1.0
    assert "novel_view_by_angle/test/90_180/no_pose_minus_zero123/silhouette_iou" not in flat  # named by direction
    assert flat["novel_view_by_angle/test/90_180/zero123_minus_no_pose/silhouette_iou"] == pytest.approx(1.0)
    table = report.angle_tables(scores, seed=0, num_resamples=200)
    assert "0-45° (N=2)" in table and "45-90° (N=1)" in table and "| copy_input |" in table


def test_the_report_names_a_profile_that_is_not_the_study():
    default = report.results_report({}, {}, "", "", [], PAPER_RESULTS)
    quick = report.results_report({}, {}, "", "", [], PAPER_RESULTS, results_dir="quick/results")
    assert default.startswith("# Results of the default CPU study") and "`results/notebooks/05_evaluate" in default
    assert quick.startswith("# Results in quick/results/: another profile, not the default study")
    assert "`quick/results/notebooks/05_evaluate.ipynb`" in quick


def test_distribution_distances_become_one_table_flat_keys_and_a_report_section():
    distances = {"frechet_tiny_clip": {"all/zero123": 1.5}, "fid": {"test/zero123": 40.25, "all/zero123": 30.0}}
    table = report.distance_table(distances)
    assert "| set/method | frechet_tiny_clip | fid |" in table
    assert "| test/zero123 | nan | 40.250 |" in table and "| all/zero123 | 1.500 | 30.000 |" in table
    flat = report.flat_distances(distances | {"fid": distances["fid"] | {"test/no_pose": math.inf}})
    assert flat == {"frechet_tiny_clip/all/zero123": 1.5, "fid/test/zero123": 40.25, "fid/all/zero123": 30.0}
    text = report.results_report({}, {}, "", "", [], PAPER_RESULTS, distance_md=table)
    assert "## Distributions of views: FID" in text and "not the paper's number" in text and "not LPIPS" in text
