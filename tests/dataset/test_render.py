"""The renderer, exercised for real (Blender Cycles in worker processes) at tiny sizes."""

import dataclasses
import errno
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from zero1to3 import cameras
from zero1to3.dataset import data, objects, render, scene

# Blender runs are CPU-heavy: keep them on one worker, and out of `make test-fast`
pytestmark = [pytest.mark.xdist_group("blender"), pytest.mark.slow]


def two_objects():
    return [objects.random_urdf_source(11), objects.zero_shot_source("mug")]


def split_of(sources):
    return {"train": [s.object_id for s in sources], "val": [], "test": [], "zero_shot": []}


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Two objects x two views at 32 px, rendered once for the module."""
    tmp = tmp_path_factory.mktemp("render")
    cfg = _cfg(tmp, num_views=2, resolution_px=32, samples_per_pixel=8)
    summary = render.render_objects(two_objects(), split_of(two_objects()), cfg, progress=False)
    return cfg, summary


def _cfg(tmp, **overrides):
    from zero1to3.config import RenderConfig

    values = dict(
        seed=0,
        num_train=2,
        num_val=0,
        num_test=0,
        everyday={"train": 0, "test": 0},
        zero_shot=[],
        sources=[],
        num_views=2,
        resolution_px=16,
        samples_per_pixel=4,
        radius_min=1.5,
        radius_max=2.2,
        polar_min_deg=0.0,
        polar_max_deg=180.0,
        data_dir=str(tmp / "data"),
        results_dir=str(tmp / "res"),
    )
    return RenderConfig(**(values | overrides))


def test_renders_rgba_views_cameras_mesh_and_manifest(rendered):
    cfg, summary = rendered
    assert [r.status for r in summary.results] == ["ok", "ok"]
    assert summary.views_rendered == 4
    manifest = data.read_manifest(cfg.data_dir)
    assert manifest["split"]["train"] == ["urdf_011", "mug"]
    assert manifest["failed"] == {}
    assert manifest["objects"]["mug"]["mesh_path"] == "pybullet_data/objects/mug.obj"  # no machine paths
    for oid in ("urdf_011", "mug"):
        views = data.load_object(cfg.data_dir, oid)
        assert views.rgba.shape == (2, 32, 32, 4) and views.rgba.dtype == np.uint8
        assert views.w2c.shape == (2, 3, 4)
        alpha = views.rgba[..., 3]
        assert np.all(alpha[:, [0, 0, -1, -1], [0, -1, 0, -1]] == 0)  # transparent background
        assert np.all((alpha > 0).mean(axis=(1, 2)) > 0.02)  # and an object in every view
        polar, azimuth = np.radians(views.meta["polar_deg"]), np.radians(views.meta["azimuth_deg"])
        expected = cameras.spherical_to_cartesian(polar, azimuth, np.asarray(views.meta["radius"]))
        np.testing.assert_allclose(views.camera_centers, expected, atol=1e-9)
        assert (data.object_dir(cfg.data_dir, oid) / "mesh.obj").is_file()


def test_projected_mesh_lands_on_the_objects_pixels(rendered):
    """A point of the object projected through the saved matrix lands on the object in the render."""
    cfg, _ = rendered
    for oid in ("urdf_011", "mug"):
        views = data.load_object(cfg.data_dir, oid)
        mesh = __import__("trimesh").load(data.object_dir(cfg.data_dir, oid) / "mesh.obj", force="mesh")
        points = mesh.sample(2000, seed=0)
        for rgba, w2c in zip(views.rgba, views.w2c, strict=True):
            hits = _fraction_on_object(points, w2c, rgba[..., 3], cfg.resolution_px)
            assert hits > 0.98, f"{oid}: only {hits:.3f} of projected surface points land on the object"
            # Negative control: the classic mistake (reading the saved w2c as camera-to-world) misses.
            wrong = cameras.c2w_to_w2c(np.vstack([w2c, [0, 0, 0, 1]]))
            assert _fraction_on_object(points, wrong, rgba[..., 3], cfg.resolution_px) < 0.5


def _fraction_on_object(points, w2c, alpha, size):
    uv, depth = cameras.project_points(points, w2c, size)
    inside = (depth > 0) & np.all((uv >= 0) & (uv < size), axis=1)
    col, row = np.floor(uv[inside]).astype(int).T
    return float(np.sum(alpha[row, col] > 0)) / len(points)


def test_same_settings_write_byte_identical_files(rendered, tmp_path):
    """Every file under the data folder (PNGs, cameras, meshes, meta, manifest) repeats byte for byte:
    they are DVC outputs, so a date in a PNG or a timing in a JSON would rerun every later stage."""
    cfg, _ = rendered
    again = dataclasses.replace(cfg, data_dir=str(tmp_path / "again"))
    render.render_objects(two_objects(), split_of(two_objects()), again, progress=False)
    for oid in ("urdf_011", "mug"):
        a, b = data.load_object(cfg.data_dir, oid), data.load_object(again.data_dir, oid)
        np.testing.assert_array_equal(a.w2c, b.w2c)
        np.testing.assert_array_equal(a.rgba, b.rgba)
    first, second = _tree_hashes(cfg.data_dir), _tree_hashes(again.data_dir)
    assert {"manifest.json", "renders/mug/000.png", "renders/mug/meta.json"} <= set(first)
    assert first.keys() == second.keys()
    assert [name for name in first if first[name] != second[name]] == []
    assert b"tEXt" not in (Path(again.data_dir) / "renders" / "mug" / "000.png").read_bytes()  # no render times


def _tree_hashes(folder):
    """sha256 of every file under `folder`, by path relative to it."""
    root = Path(folder)
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
        if p.is_file()
    }


def test_broken_mesh_is_reported_recorded_and_skipped(tmp_path):
    broken_path = tmp_path / "broken.obj"
    broken_path.write_bytes(b"v 0 0 0\nthis is not an obj file\n")
    sources = [objects.ObjectSource("broken", broken_path, (1, 0, 0, 1)), objects.random_urdf_source(3)]
    cfg = _cfg(tmp_path)
    summary = render.render_objects(sources, split_of(sources), cfg, progress=False)
    assert [r.status for r in summary.results] == ["failed", "ok"]
    assert "broken" in summary.failed[0].error
    manifest = data.read_manifest(cfg.data_dir)
    assert manifest["split"]["train"] == ["urdf_003"]
    assert "broken" in manifest["failed"] and "holds no triangles" in manifest["failed"]["broken"]
    renders = sorted(p.name for p in (tmp_path / "data" / "renders").iterdir())
    assert renders == ["urdf_003"]  # nothing of the broken object is left


def test_rerun_reuses_finished_objects_and_redoes_changed_settings(tmp_path):
    sources = [objects.random_urdf_source(3)]
    cfg = _cfg(tmp_path)
    first = render.render_objects(sources, split_of(sources), cfg, progress=False)
    png = tmp_path / "data" / "renders" / "urdf_003" / "000.png"
    stamp = png.stat().st_mtime_ns
    again = render.render_objects(sources, split_of(sources), cfg, progress=False)
    assert [r.status for r in again.results] == ["cached"] and png.stat().st_mtime_ns == stamp
    counts, reused = render.dataset_metrics(first, cfg), render.dataset_metrics(again, cfg)
    assert counts.pop("render_ms_per_view") > 0 and reused == counts  # resumed = same counts, no cost measured
    assert first.manifest_path.read_bytes() == again.manifest_path.read_bytes()  # the data, not the run
    bigger = render.render_objects(sources, split_of(sources), dataclasses.replace(cfg, resolution_px=24), False)
    assert [r.status for r in bigger.results] == ["ok"]
    assert data.load_object(cfg.data_dir, "urdf_003").rgba.shape[1] == 24
    assert sorted(p.name for p in (tmp_path / "data" / "renders").iterdir()) == ["urdf_003"]  # old one swapped out


def test_all_objects_failing_stops_and_keeps_earlier_renders(tmp_path):
    """New settings under which every object fails: the stage stops and the old renders and manifest stay."""
    sources = [objects.random_urdf_source(3), objects.random_urdf_source(4)]
    cfg = _cfg(tmp_path, num_views=1)
    render.render_objects(sources, split_of(sources), cfg, progress=False)
    before = _tree_hashes(cfg.data_dir)
    missing = [dataclasses.replace(s, mesh_path=tmp_path / f"gone_{s.object_id}.obj") for s in sources]
    with pytest.raises(render.RenderError, match=r"(?s)all 2 objects failed.*urdf_003: MeshError.*gone_urdf_003"):
        render.render_objects(missing, split_of(missing), dataclasses.replace(cfg, resolution_px=24), progress=False)
    assert _tree_hashes(cfg.data_dir) == before  # renders (nothing replaced, nothing left over) and manifest


def test_interrupted_swap_is_undone_by_the_next_run(tmp_path):
    """A kill during the old-aside / new-in swap leaves the old object under `.replaced`: it is put back."""
    renders = tmp_path / "renders"
    for name in ("a.replaced", "b", "b.replaced", "c.partial"):
        (renders / name).mkdir(parents=True)
        (renders / name / "meta.json").write_text(name)
    (renders / "d.partial").write_text("a stray file")
    render._recover_interrupted(renders)
    assert {p.name: (p / "meta.json").read_text() for p in renders.iterdir()} == {"a": "a.replaced", "b": "b"}


def test_only_mesh_errors_skip_an_object():
    assert render.is_object_error(objects.MeshError("urdf_001: mesh holds no triangles"))
    for err in (
        OSError(errno.ENOSPC, "No space left on device"),
        PermissionError(errno.EACCES, "Permission denied"),
        OSError(errno.EROFS, "Read-only file system"),
        __import__("concurrent.futures.process").futures.process.BrokenProcessPool("worker died"),
        RuntimeError("Error: Cannot render, no camera"),
        ValueError("`up_axis` must be 'Y' or 'Z', got 'X'"),
    ):
        assert not render.is_object_error(err), err


def test_disk_full_while_rendering_raises_and_cleans_up(tmp_path, monkeypatch):
    """In the worker: a full disk propagates (it is no object's fault), the partial folder goes, the old stays."""
    renders = tmp_path / "renders"
    (renders / "urdf_003").mkdir(parents=True)
    (renders / "urdf_003" / "meta.json").write_text("old")

    def disk_full(source, out_dir, cfg):
        out_dir.mkdir(parents=True)
        (out_dir / "000.png").write_bytes(b"half")
        raise OSError(errno.ENOSPC, "No space left on device", str(out_dir / "000.npy"))

    monkeypatch.setattr(scene, "render_object", disk_full)
    monkeypatch.setitem(scene.WORKER, "cfg", None)
    with pytest.raises(OSError, match="No space left") as info:
        render._render_one_safe((objects.random_urdf_source(3), str(renders)))
    assert info.value.errno == errno.ENOSPC
    assert [p.name for p in renders.iterdir()] == ["urdf_003"]
    assert (renders / "urdf_003" / "meta.json").read_text() == "old"

    def bad_mesh(source, out_dir, cfg):
        raise objects.MeshError(f"{source.object_id}: mesh holds no triangles")

    monkeypatch.setattr(scene, "render_object", bad_mesh)
    result = render._render_one_safe((objects.random_urdf_source(3), str(renders)))
    assert (result.status, result.error) == ("failed", "MeshError: urdf_003: mesh holds no triangles")


def test_write_error_in_a_worker_stops_the_stage(tmp_path):
    """A real write error in a Blender worker (file size limit: EFBIG, as a full disk gives ENOSPC) stops
    the run with an error naming the object and the cause; nothing is skipped or left half-written."""
    cfg = _cfg(tmp_path, num_views=1)
    script = textwrap.dedent(f"""
        from zero1to3.dataset import objects, render
        from zero1to3.config import RenderConfig
        if __name__ == "__main__":
            sources = [objects.random_urdf_source(3)]
            split = {{"train": ["urdf_003"], "val": [], "test": [], "zero_shot": []}}
            render.render_objects(sources, split, RenderConfig(**{cfg.to_dict()!r}), progress=False)
    """)
    limit = 2048  # bytes: the 8 kB mesh.obj the worker writes first cannot fit
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("zero1to3.dataset.render.RenderError: rendering stopped at object urdf_003"), proc.stderr[
        -3000:
    ]
    assert "File too large" in last
    renders = tmp_path / "data" / "renders"
    assert list(renders.iterdir()) == [] and not (tmp_path / "data" / "manifest.json").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders (the test above covers root)")
def test_read_only_renders_folder_stops_the_stage(tmp_path):
    cfg = _cfg(tmp_path, num_views=1)
    renders = tmp_path / "data" / "renders"
    renders.mkdir(parents=True)
    renders.chmod(0o500)
    try:
        with pytest.raises(render.RenderError, match=r"stopped at object urdf_003 .*PermissionError"):
            render.render_objects(
                [objects.random_urdf_source(3)], split_of([objects.random_urdf_source(3)]), cfg, False
            )
    finally:
        renders.chmod(0o700)
    assert list(renders.iterdir()) == [] and not (tmp_path / "data" / "manifest.json").exists()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="finds the worker through /proc (Linux)")
def test_worker_dies_with_its_parent(tmp_path):
    """SIGKILL the process that called render_objects mid-render: its Blender worker must not live on."""
    cfg = _cfg(tmp_path, num_views=400, samples_per_pixel=1)  # long enough to be killed mid-object
    script = textwrap.dedent(f"""
        from zero1to3.dataset import objects, render
        from zero1to3.config import RenderConfig
        if __name__ == "__main__":
            sources = [objects.random_urdf_source(3)]
            split = {{"train": ["urdf_003"], "val": [], "test": [], "zero_shot": []}}
            render.render_objects(sources, split, RenderConfig(**{cfg.to_dict()!r}), progress=False)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    workers = []
    try:
        partial = tmp_path / "data" / "renders" / "urdf_003.partial"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not (partial / "000.png").exists():
            time.sleep(0.05)
        workers = [pid for pid in _children(proc.pid) if b"spawn_main" in _cmdline(pid)]
        assert len(workers) == 1, f"expected one render worker of {proc.pid}, found {workers}"
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _alive(workers[0]):
            time.sleep(0.05)
        assert not _alive(workers[0]), f"worker {workers[0]} outlived its parent {proc.pid}"
    finally:
        for pid in workers:  # never leave a ~1 GB Blender process behind, even when the test fails
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


def _children(pid):
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid):
    """Running (not gone, not a zombie waiting for a reaper)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_resume_after_a_kill_ends_as_an_uninterrupted_run(tmp_path):
    """Kill a real render run mid-way (SIGKILL to its whole process group), rerun, compare."""
    ids = [20, 21, 22, 23, 24, 25]
    cfg = _cfg(tmp_path / "killed", num_views=12, resolution_px=32, samples_per_pixel=16)
    script = textwrap.dedent(f"""
        from zero1to3.dataset import objects, render
        from zero1to3.config import RenderConfig
        if __name__ == "__main__":
            sources = [objects.random_urdf_source(i) for i in {ids}]
            split = {{"train": [s.object_id for s in sources], "val": [], "test": [], "zero_shot": []}}
            render.render_objects(sources, split, RenderConfig(**{cfg.to_dict()!r}), progress=False)
    """)
    proc = subprocess.Popen(
        [sys.executable, "-c", script], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    renders = tmp_path / "killed" / "data" / "renders"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not any(p.suffix != ".partial" for p in renders.glob("urdf_*")):
        time.sleep(0.01)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.name for p in renders.iterdir() if p.suffix != ".partial"}
    assert 1 <= len(finished) < len(ids), f"the kill should land mid-run; finished: {sorted(finished)}"

    sources = [objects.random_urdf_source(i) for i in ids]
    resumed = render.render_objects(sources, split_of(sources), cfg, progress=False)
    status = {r.object_id: r.status for r in resumed.results}
    assert {oid for oid, s in status.items() if s == "cached"} == finished
    assert not list(renders.glob("*.partial"))

    clean = dataclasses.replace(cfg, data_dir=str(tmp_path / "clean" / "data"))
    render.render_objects(sources, split_of(sources), clean, progress=False)
    for source in sources:
        a, b = data.load_object(cfg.data_dir, source.object_id), data.load_object(clean.data_dir, source.object_id)
        np.testing.assert_array_equal(a.rgba, b.rgba)
        np.testing.assert_array_equal(a.w2c, b.w2c)
    assert (renders.parent / "manifest.json").read_bytes() == (Path(clean.data_dir) / "manifest.json").read_bytes()


def test_summary_metrics_and_table(rendered):
    cfg, summary = rendered
    metrics = render.dataset_metrics(summary, cfg)
    assert metrics["objects_train"] == 2 and metrics["views_total"] == 4 and metrics["objects_failed"] == 0
    assert metrics["render_ms_per_view"] > 0
    table = render.summary_table(summary, cfg)
    assert "| train | 2 | 4 | 0 |" in table


# --- sharding and your own objects ----------------------------------------------------------------------------------


def _fake_render_all(todo, renders, cfg, progress, num_workers):
    """Stands in for the Blender workers: `urdf_...` objects with an odd index fail as a broken mesh would."""
    return [
        render.ObjectResult(s.object_id, "failed", "MeshError: broken", 0.0, 0)
        if s.object_id.startswith("urdf_") and int(s.object_id[-1]) % 2
        else render.ObjectResult(s.object_id, "ok", None, 0.1, cfg.num_views)
        for s in todo
    ]


def test_shard_manifests_merge_to_the_unsharded_manifest(tmp_path, monkeypatch):
    from test_objects import make_example_meshes

    monkeypatch.setattr(render, "_render_all", _fake_render_all)
    meshes = make_example_meshes(tmp_path / "meshes")
    extra = {
        "gso": objects.folder_sources(meshes, "*/meshes/model.obj", prefix="gso_"),
        "train": objects.folder_sources(meshes / "scans", "*.ply"),
    }
    whole = _cfg(tmp_path / "whole", num_train=5, num_val=1, num_test=2, zero_shot=["duck", "mug"])
    render.render_dataset(whole, progress=False, extra_sources=extra)
    expected = (Path(whole.data_dir) / data.MANIFEST_NAME).read_text()
    sharded = dataclasses.replace(whole, data_dir=str(tmp_path / "sharded" / "data"))
    for k in range(3):
        summary = render.render_dataset(sharded, progress=False, extra_sources=extra, shard=(k, 3))
        assert summary.manifest_path.name == f"manifest.shard-{k + 1}-of-3.json"
    with pytest.raises(FileNotFoundError, match="manifest.shard-4-of-4.json"):
        render.merge_manifests(sharded.data_dir, 4)
    merged = render.merge_manifests(sharded.data_dir, 3)
    assert merged.read_text() == expected
    assert "gso_shoe" in json.loads(expected)["split"]["gso"]
    assert sorted(p.name for p in Path(sharded.data_dir).glob("manifest*")) == ["manifest.json"]


def test_own_objects_render_with_their_textures_and_vertex_colours(tmp_path):
    from test_objects import make_example_meshes

    meshes = make_example_meshes(tmp_path / "meshes")
    extra = {
        "mine": objects.folder_sources(meshes / "scans", "*.*")
        + objects.folder_sources(meshes / "objaverse", "*.glb", up_axis="Y")
        + objects.folder_sources(meshes, "*/meshes/model.obj", prefix="gso_")
    }
    cfg = _cfg(tmp_path, num_train=0, num_views=1, resolution_px=16, samples_per_pixel=4)
    summary = render.render_dataset(cfg, progress=False, extra_sources=extra)
    assert summary.split["mine"] == ["green_ball", "8a2f_c0", "gso_shoe"]
    assert list(json.loads(summary.manifest_path.read_text())["failed"]) == ["broken"]  # reported and skipped
    assert not (Path(cfg.data_dir) / "renders" / "broken").exists()
    ball = data.load_object(cfg.data_dir, "green_ball").rgba[0].astype(float)  # (16, 16, 4)
    on = ball[..., 3] > 250
    assert on.sum() > 20 and np.all(ball[on][:, 1] > ball[on][:, 0]) and np.all(ball[on][:, 1] > ball[on][:, 2])
    shoe = data.load_object(cfg.data_dir, "gso_shoe").rgba[0].astype(float)
    assert np.ptp(shoe[shoe[..., 3] > 250][:, 0]) > 60  # the checker texture, not one flat shade
    assert (Path(cfg.data_dir) / "renders" / "gso_shoe" / "material_0.png").is_file()


def _entry(path, glob, split, **more):
    from zero1to3.config import ObjectSourceEntry

    return ObjectSourceEntry(**{"path": str(path), "glob": glob, "up_axis": "Z", "prefix": "", "split": split} | more)


def test_render_sources_from_params_render_as_extra_sources_do(tmp_path, monkeypatch):
    """`render.sources` (params) and `extra_sources` (Python) give the same manifest; a list file works too."""
    from test_objects import make_example_meshes

    monkeypatch.setattr(render, "_render_all", _fake_render_all)
    meshes = make_example_meshes(tmp_path / "meshes")
    (meshes / "train.txt").write_text("scans/green ball.ply\n")
    entries = [
        _entry(meshes, "*/meshes/model.obj", "gso", prefix="gso_"),
        _entry(meshes / "objaverse", "*.glb", "gso", up_axis="Y", color_rgba=[0.2, 0.4, 0.8, 1.0]),
        _entry(meshes / "train.txt", "", "train"),
    ]
    extra = render.config_sources(entries)
    assert {name: [s.object_id for s in group] for name, group in extra.items()} == {
        "gso": ["gso_shoe", "8a2f_c0"],
        "train": ["scans"],
    }
    assert extra["gso"][1].up_axis == "Y" and extra["gso"][1].color_rgba == (0.2, 0.4, 0.8, 1.0)
    by_params = _cfg(tmp_path / "params", num_train=3, sources=[e.model_dump() for e in entries])
    render.render_dataset(by_params, progress=False)
    by_python = _cfg(tmp_path / "python", num_train=3)
    render.render_dataset(by_python, progress=False, extra_sources=extra)
    manifest = data.read_manifest(by_params.data_dir)
    assert manifest == data.read_manifest(by_python.data_dir)
    assert manifest["split"]["gso"] == ["gso_shoe", "8a2f_c0"] and manifest["split"]["train"][-1] == "scans"


def test_bad_render_sources_fail_before_anything_renders(tmp_path, monkeypatch):
    from test_objects import make_example_meshes

    monkeypatch.setattr(render, "_render_all", lambda *a: pytest.fail("rendered despite a bad source"))
    meshes = make_example_meshes(tmp_path / "meshes")
    (meshes / "list.txt").write_text("scans/green ball.ply\n")
    cases = [
        (_entry(meshes / "list.txt", "*.ply", "gso"), ValueError, r"sources\[0\] .*list file .*`glob` must be ''"),
        (_entry(meshes / "scans", "", "gso"), ValueError, r"sources\[0\] .*a folder needs a `glob`"),
        (_entry(meshes / "nowhere", "*.glb", "gso"), FileNotFoundError, r"sources\[0\] .*neither a folder nor a list"),
        (_entry(meshes / "scans", "*.mtl", "gso"), ValueError, r"sources\[0\] .*holds no mesh"),
        (_entry(meshes / "scans", "*.ply", "gso", prefix="urdf_"), ValueError, "built-in"),
    ]
    for entry, kind, message in cases:
        with pytest.raises(kind, match=message):
            render.render_dataset(_cfg(tmp_path, sources=[entry.model_dump()]), progress=False)
    twice = [_entry(meshes / "scans", "*.ply", name).model_dump() for name in ("gso", "test")]  # one object, 2 sets
    with pytest.raises(ValueError, match="'green_ball' .* is already in the split"):
        render.render_dataset(_cfg(tmp_path, sources=twice), progress=False)
    assert not (tmp_path / "data" / data.MANIFEST_NAME).exists()


# --- the procedural everyday objects ---------------------------------------------------------------------------------


def test_everyday_sources_split_a_seeded_draw_and_keep_only_this_counts_meshes(tmp_path):
    cfg = _cfg(tmp_path, everyday={"train": 4, "test": 2})
    extra = render.everyday_sources(cfg)
    train, held_out = ([s.object_id for s in extra[name]] for name in ("train", render.EVERYDAY_TEST_SET))
    assert len(train) == 4 and len(held_out) == 2 and not set(train) & set(held_out)
    assert all(oid.startswith("every_") for oid in train + held_out)
    folder = tmp_path / "data" / render.EVERYDAY_DIR
    before = {p.name: p.read_bytes() for p in folder.glob("*.ply")}
    again = render.everyday_sources(cfg)  # written again, byte for byte, the same draw
    assert {p.name: p.read_bytes() for p in folder.glob("*.ply")} == before and again == extra
    fewer = render.everyday_sources(dataclasses.replace(cfg, everyday={"train": 1, "test": 1}))
    assert len(list(folder.glob("*.ply"))) == 2 and sum(map(len, fewer.values())) == 2  # no mesh of the larger count
    other_seed = render.everyday_sources(dataclasses.replace(cfg, seed=1))
    assert [s.object_id for s in other_seed[render.EVERYDAY_TEST_SET]] != held_out or train != [
        s.object_id for s in other_seed["train"]
    ]
    assert render.everyday_sources(dataclasses.replace(cfg, everyday={"train": 0, "test": 0})) == {}


def test_everyday_objects_render_into_train_and_every_test_and_an_edited_generator_renders_again(tmp_path, monkeypatch):
    """A finished object is reused only while its mesh file is unchanged (by SHA-256): an edit to `everyday.py` that
    changes the meshes renders them again under the same ids, where settings alone would have reused stale views."""
    from zero1to3.dataset import everyday

    cfg = _cfg(tmp_path, num_train=0, everyday={"train": 1, "test": 1}, num_views=1)
    first = render.render_dataset(cfg, progress=False)
    assert len(first.split["train"]) == 1 and len(first.split[render.EVERYDAY_TEST_SET]) == 1
    assert render.dataset_metrics(first, cfg)["objects_train_everyday"] == 1
    (oid,) = first.split["train"]
    meta = json.loads((tmp_path / "data" / "renders" / oid / scene.META_NAME).read_text())
    mesh_file = Path(cfg.data_dir) / render.EVERYDAY_DIR / f"{oid.removeprefix(render.EVERYDAY_PREFIX)}.ply"
    assert meta["mesh_sha256"] == scene.mesh_sha256(objects.ObjectSource(oid, mesh_file, None))
    assert {r.status for r in render.render_dataset(cfg, progress=False).results} == {"cached"}
    monkeypatch.setattr(everyday, "colour", lambda rng, saturation=(0.35, 0.9): np.array([255.0, 0.0, 0.0]))
    edited = render.render_dataset(cfg, progress=False)
    assert {r.status for r in edited.results} == {"ok"}
    view = data.load_object(cfg.data_dir, oid).rgba[0].astype(float)
    assert view[view[..., 3] > 250][:, 0].mean() > view[view[..., 3] > 250][:, 2].mean()  # the new, red one
