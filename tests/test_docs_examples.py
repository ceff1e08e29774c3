"""The README's Python snippets, the interop pages' examples and the tutorials run as pasted (each page's blocks in
order, in a fresh interpreter, in a temporary directory with its own cache; nothing is downloaded)."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = ["README.md"] + [str(p.relative_to(ROOT)) for folder in ("interop", "tutorials")
                         for p in sorted((ROOT / "docs" / folder).glob("*.md"))]
NEEDS = {"docs/interop/diffusers.md": "diffusers", "docs/interop/schedules.md": "diffusers",
         "docs/interop/kdiffusion.md": "torch", "docs/interop/torch.md": "torch",
         "docs/tutorials/diffusers.md": "diffusers", "docs/tutorials/stepper.md": "torch",
         "docs/tutorials/order-study.md": "matplotlib"}


def _blocks(page):
    return re.findall(r"```python\n(.*?)```", (ROOT / page).read_text(encoding="utf-8"), flags=re.S)


@pytest.mark.parametrize("page", PAGES)
def test_page_examples_run_as_pasted(page, tmp_path):
    if page in NEEDS:
        pytest.importorskip(NEEDS[page])
    code = "\n".join(_blocks(page))
    assert code.strip(), f"{page} has no python example"
    env = {**os.environ, "DIFFSOLVE_CACHE_DIR": str(tmp_path / "cache"), "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
