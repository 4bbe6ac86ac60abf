from zero1to3.core import repro


def test_environment_info_records_versions_and_commit(tmp_path):
    info = repro.environment_info()
    assert info["packages"]["torch"].startswith("2.14.1")
    assert info["packages"]["bpy"] == "5.0.1"
    assert info["cpu_count"] >= 1 and info["python"].startswith("3.11")
    assert info["torch_cpu_capability"] in ("DEFAULT", "AVX2", "AVX512", "ZVECTOR", "VSX", "NO AVX", "SVE256", None)
    assert len(info["git_commit"] or "") in (0, 40)
    outside = repro.environment_info(tmp_path)  # not a git repository: recorded as unknown, no crash
    assert outside["git_commit"] is None
