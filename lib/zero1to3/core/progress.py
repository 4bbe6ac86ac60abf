"""What a long stage shows while it runs: a progress bar, and one line on what it reused from an earlier run.

Bars are a widget in a Jupyter frontend (JupyterLab, Notebook, VS Code) and text everywhere else: on the
command line, in logs, and in a notebook executed by papermill or nbconvert. `tqdm.auto` cannot tell the
last case from the first (both are an IPython kernel with ipywidgets installed), so under papermill it draws
a widget that no frontend updates: the executed notebook keeps a frozen "0%" bar and the widget's state
JSON. The difference we test instead is the request being executed: a frontend that a person types into
sends `allow_stdin=True` (it can answer `input()`), a batch executor sends `False` (nbclient sets it so).
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm import tqdm as text_tqdm


def widget_frontend() -> bool:
    """True in a Jupyter kernel whose current request comes from an interactive frontend (bars as widgets)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):  # plain Python, the IPython terminal, or a test
        return False
    parent = kernel.get_parent() or {}  # the execute request (or widget message) being handled now
    return bool(parent.get("content", {}).get("allow_stdin", False))


def bar(iterable: Iterable[Any] | None = None, **kwargs: Any) -> text_tqdm:
    """A `tqdm` bar over `iterable` (keyword arguments as `tqdm`'s): a widget in a Jupyter frontend, else text."""
    if widget_frontend():
        from tqdm.notebook import tqdm as widget_tqdm  # imports ipywidgets: only where a frontend shows it

        return widget_tqdm(iterable, **kwargs)
    return text_tqdm(iterable, **kwargs)


@contextlib.contextmanager
def library_bars() -> Iterator[None]:
    """Within the block, transformers' own bars ("Loading weights", "Writing model shards") follow `bar`'s rule.

    transformers draws them with `tqdm.auto`, which is a widget in any kernel: papermill would keep a frozen "0%"
    widget and its state JSON in every executed notebook that loads or saves a model.
    """
    from transformers.utils import logging as hf_logging

    def hook(factory: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if factory is hf_logging.EmptyTqdm:  # bars switched off (`disable_progress_bar`) stay off
            return factory(*args, **kwargs)
        return bar(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)


def reuse_line(reused: list[str], source: str = "") -> str:
    """The one line a notebook shows on what it took over from an earlier run instead of computing it again.

    `reused` names each part ("506 rendered objects"), `source` where they were found ("`data/`"); no part says
    that this run computed everything itself.
    """
    if not reused:
        return "Reused: nothing; this run computed everything itself."
    return f"Reused{f' from {source}' if source else ''}: " + "; ".join(reused) + "."
