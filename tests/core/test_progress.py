"""Progress bars: text outside a Jupyter frontend, a widget inside one; the one-line note on what a run reused."""

import pytest
from tqdm.std import tqdm as text_tqdm

from zero1to3 import stages
from zero1to3.core import progress


def test_reuse_line_names_what_was_reused_and_where():
    assert progress.reuse_line(["the VAE", "the model (finished run, 4000 steps)"], "`models/finetune/`") == (
        "Reused from `models/finetune/`: the VAE; the model (finished run, 4000 steps)."
    )
    assert progress.reuse_line(["506 rendered objects"]) == "Reused: 506 rendered objects."
    assert progress.reuse_line([], "`data/`") == "Reused: nothing; this run computed everything itself."


def test_outside_a_kernel_the_bar_is_text():
    assert not progress.widget_frontend()
    bar = progress.bar(range(3), disable=True)
    assert type(bar) is text_tqdm and list(bar) == [0, 1, 2]


def _run_in_kernel(client, code: str, allow_stdin: bool) -> list[dict]:
    """Execute `code` as a frontend (`allow_stdin=True`) or a batch executor would; the iopub messages it caused."""
    msg_id = client.execute(code, allow_stdin=allow_stdin)
    messages = []
    while True:
        msg = client.get_iopub_msg(timeout=120)
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages
        messages.append(msg)


@pytest.mark.slow
def test_in_the_projects_kernel_a_frontend_gets_a_widget_and_a_batch_run_text():
    """JupyterLab sends `allow_stdin=True`, papermill (nbclient) `False`: the same cell draws a widget, then text."""
    from jupyter_client.manager import start_new_kernel

    manager, client = start_new_kernel(kernel_name=stages.KERNEL_NAME, startup_timeout=120)
    try:
        code = "from zero1to3.core import progress\nfor _ in progress.bar(range(3), desc='demo'):\n    pass"
        widget = _run_in_kernel(client, code, allow_stdin=True)
        client.allow_stdin = False  # what nbclient sets
        text = _run_in_kernel(client, code, allow_stdin=False)
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    widget_views = [m for m in widget if "application/vnd.jupyter.widget-view+json" in m["content"].get("data", {})]
    assert len(widget_views) == 1 and not [m for m in widget if m["msg_type"] == "error"]
    streams = "".join(m["content"]["text"] for m in text if m["msg_type"] == "stream")
    assert "demo: 100%" in streams and "3/3" in streams
    assert not [m for m in text if m["msg_type"] in ("display_data", "comm_open", "error")]
