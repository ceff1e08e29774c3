"""The documentation site builds with ``mkdocs build --strict`` (every page in the nav, every relative link and
anchor resolved, every ``::: diffsolve.X`` block importable), its generated pages carry what the library says,
and the API reference covers ``diffsolve.__all__``."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import diffsolve as ds

ROOT = Path(__file__).resolve().parent.parent
API = ROOT / "docs" / "api"


def test_api_reference_covers_the_public_surface():
    documented = set(re.findall(r"^::: diffsolve\.(\w+)", "\n".join(p.read_text(encoding="utf-8")
                                                                     for p in API.glob("*.md")), flags=re.M))
    missing = sorted(set(ds.__all__) - documented - {"DiffsolveError", "DiffsolveTypeError", "DiffsolveWarning",
                                                     "ModelOutputError"})
    assert not missing, f"names of diffsolve.__all__ without a '::: diffsolve.NAME' block in docs/api/: {missing}"
    errors = (API / "errors.md").read_text(encoding="utf-8")
    for name in ("DiffsolveError", "DiffsolveTypeError", "DiffsolveWarning", "ModelOutputError"):
        assert name in errors, f"docs/api/errors.md does not document {name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DIFFSOLVE_CACHE_DIR": str(out / "cache"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                           "-d", str(out / "html")], cwd=out, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out / "html"


def _text(site, page):
    return (site / page / "index.html").read_text(encoding="utf-8")


def test_solver_table_lists_the_registry(site):
    html = _text(site, "reference/solvers")
    # the registry of a fresh process, as the build saw it (this one may hold solvers other tests derived)
    names = subprocess.run([sys.executable, "-c", "import diffsolve as ds; print(*[r['name'] for r in "
                            "ds.list_solvers()])"], capture_output=True, text=True, check=True).stdout.split()
    assert len(names) > 30
    for name in names:
        assert f"<code>{name}</code>" in html, name
    assert not (ROOT / "docs" / "reference").exists(), "generated pages must stay out of the source tree"


def test_coefficients_are_rendered_as_math(site):
    html = _text(site, "reference/coefficients")
    for name in ("ddim", "dpmpp-2m", "dpmpp-3m", "seeds-1"):
        assert f"<code>{name}</code>" in html, name
    assert html.count('class="arithmatex"') >= 5 and r"\psi_{2}" in html  # dpmpp-3m's second moment weight


def test_home_page_is_the_readme_and_api_pages_have_the_objects(site):
    home = _text(site, "")
    assert "Run the main job" in home and "<!-- README -->" not in home
    assert 'href="interop/diffusers/"' in home  # README's docs/ links made site-relative
    for page, anchor in (("api/stepper", "diffsolve.Stepper.step"), ("api/sampling", "diffsolve.sample"),
                         ("api/schedules", "diffsolve.schedules.ExprSchedule.from_expr"),
                         ("api/schedules", "diffsolve.time_grid"), ("api/solvers", "diffsolve.derive.derive"),
                         ("api/interop", "diffsolve.interop.diffusers.DiffsolveScheduler.set_timesteps")):
        assert f'id="{anchor}"' in _text(site, page), (page, anchor)
    assert ":class:<code>" not in _text(site, "api/stepper")
