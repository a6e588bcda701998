"""The report stage: reports/RESULTS.md and the HTML report, both from the aggregate stage's tables.

`run` writes RESULTS.md (results_page.py), executes reports/comparison.ipynb with papermill (kernel:
this interpreter) into reports/comparison.executed.ipynb, then converts it with nbconvert into a
self-contained reports/comparison.html: code hidden, figures embedded as base64 PNG, no script fetched
from the network (the page must open offline). The outputs replace their old versions only once all
of them are made.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from seqbench import paths, results, results_page
from seqbench.errors import DataError, SeqbenchError
from seqbench.params import Params
from seqbench.paths import Layout

OUTPUTS = paths.REPORT_OUTPUTS
TEMPLATE = "comparison.ipynb"
KERNEL = "python3"  # jupyter_client runs a kernelspec whose argv starts with `python` with sys.executable
# nbconvert's lab template, minus the <script> tags that load require.js, MathJax and mermaid from CDNs
HTML_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js -%}{%- endblock html_head_js -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""


def notebook_parameters(params: Params, layout: Layout) -> dict:
    return {"project_root": str(layout.root), "preset": params.preset, "python_prefix": sys.prefix}


def html_from_notebook(path: Path) -> str:
    import nbformat
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab", extra_loaders=[DictLoader({"seqbench.html.j2": HTML_TEMPLATE})],
                            template_file="seqbench.html.j2")
    exporter.exclude_input = True
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    notebook = nbformat.read(path, as_version=4)
    notebook.metadata["title"] = "seqbench comparison"
    body, _ = exporter.from_notebook_node(notebook)
    return body


def run(params: Params, layout: Layout) -> None:
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel

    template = layout.reports / TEMPLATE
    if not template.is_file():
        raise DataError(f"{template}: report template missing; restore it from the repository "
                        f"(git checkout reports/{TEMPLATE})")
    for name in ("summary", "results", "costs"):
        if not (layout.reports / f"{name}.csv").is_file():
            raise DataError(f"{layout.reports / (name + '.csv')}: missing; run `python -m seqbench aggregate` first")
    page = results_page.build(params, layout, results.load_jobs(params, layout))
    with tempfile.TemporaryDirectory(dir=layout.reports, prefix=".report-") as tmp:
        executed = Path(tmp) / "comparison.executed.ipynb"
        try:
            papermill.execute_notebook(str(template), str(executed), parameters=notebook_parameters(params, layout),
                                       kernel_name=KERNEL, cwd=str(layout.root), progress_bar=False)
        except NoSuchKernel:
            raise SeqbenchError(f"no Jupyter kernel {KERNEL!r} for {sys.executable}: run "
                                f"`{sys.executable} -m ipykernel install --sys-prefix` (ipykernel is a dependency)") from None
        except papermill.PapermillExecutionError as error:
            failed = layout.reports / "comparison.failed.ipynb"
            if executed.is_file():
                os.replace(executed, failed)
            raise SeqbenchError(f"{template}: cell {error.exec_count} failed with {error.ename}: {error.evalue} "
                                f"(the partly executed notebook is {failed})") from None
        html = Path(tmp) / "comparison.html"
        html.write_text(html_from_notebook(executed), encoding="utf-8")
        markdown = Path(tmp) / "RESULTS.md"
        markdown.write_text(page, encoding="utf-8")
        os.replace(executed, layout.reports / "comparison.executed.ipynb")
        os.replace(html, layout.reports / "comparison.html")
        os.replace(markdown, layout.reports / "RESULTS.md")
