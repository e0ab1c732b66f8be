"""Run the demo: each step is the library call behind one ``vlanalyze`` command, and is
reported with that command, so a newcomer can re-run any step by hand."""

from __future__ import annotations

import os
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vlanalyze._fs import ensure_empty_folder
from vlanalyze.errors import ExportFormatError

SPLIT = {"train": 0.75, "val": 0.25}
TOP = 12


@dataclass(frozen=True)
class DemoStep:
    """One step of the demo: what it did, the command that does the same, where to look."""

    title: str
    command: str
    look: Path | None = None
    detail: str = ""


@dataclass(frozen=True)
class DemoResult:
    """Where the demo put everything."""

    folder: Path
    export: Path
    selection: Path
    dataset: Path
    report: Path
    steps: list[DemoStep] = field(default_factory=list)


def sample_export() -> Path:
    """The bundled sample export folder (metadata.json and images/).

    Raises:
        ExportFormatError: it is not there (vlanalyze installed without its sample).
    """
    here = Path(__file__).resolve().parents[1]
    for candidate in (
        here / "_sample_export",  # inside an installed wheel
        here.parent / "sample_data" / "export-json",  # a clone of the repository
        here.parent / "sample_data" / "export",
    ):
        if (candidate / "metadata.json").is_file() and (candidate / "images").is_dir():
            return candidate
    raise ExportFormatError(
        "the demo's sample export is not installed with vlanalyze",
        hint="run the demo from a clone of the repository (it reads sample_data/)",
    )


def _cmd(*args: object) -> str:
    return "vlanalyze " + " ".join(shlex.quote(str(a)) for a in args)


def run_demo(
    folder: str | os.PathLike[str] | None = None,
    *,
    on_step: Callable[[DemoStep], None] | None = None,
) -> DemoResult:
    """Fetch the sample from a local stand-in of the export API, select a training subset,
    write it as an ImageFolder, and report on it, all into ``folder``.

    Args:
        folder: an absent or empty folder (default: a new temporary folder).
        on_step: called with each :class:`DemoStep` when it is done.

    Returns:
        A :class:`DemoResult` naming every output.

    Raises:
        MaterializeError: ``folder`` is not empty.
        ExportFormatError: the sample export is not installed.
    """
    root = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="vlanalyze-demo-"))
    ensure_empty_folder(root, overwrite=False)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    steps: list[DemoStep] = []

    def done(step: DemoStep) -> None:
        steps.append(step)
        if on_step is not None:
            on_step(step)

    export = _fetch(sample_export(), root / "export", done)
    selection, dataset, report = (
        root / "selection.parquet",
        root / "dataset",
        root / "report.html",
    )
    _select_to_report(export, selection, dataset, report, done)
    return DemoResult(root, export, selection, dataset, report, steps)


def _fetch(sample: Path, dest: Path, done: Callable[[DemoStep], None]) -> Path:
    from vlanalyze.fetch._client import VisualLayerClient
    from vlanalyze.fetch._pull import pull_export
    from vlanalyze.testing import DEMO_DATASET_ID, StandIn

    with StandIn(sample) as server:
        done(
            DemoStep(
                "A stand-in of the Visual Layer export API serves the sample, on loopback",
                _cmd("stand-in", sample, "--port", server.port),
                detail=f"at {server.base_url}",
            )
        )
        key, secret = server.api_key, server.api_secret
        with VisualLayerClient(server.base_url, api_key=key, api_secret=secret) as client:
            pulled = pull_export(
                client, DEMO_DATASET_ID, dest, include_images=True, poll_interval=0.1
            )
            path = Path(pulled)  # a Path, or a path-like result
        env = f"VL_BASE_URL={server.base_url} VL_API_KEY={key} VL_API_SECRET={secret} "
    done(
        DemoStep(
            "Fetch: export the dataset with its images, download, extract safely",
            env + _cmd("fetch", DEMO_DATASET_ID, "-o", dest, "--images"),
            look=path,
        )
    )
    return path


def _select_to_report(
    export: Path, selection: Path, dataset: Path, report: Path, done: Callable[[DemoStep], None]
) -> None:
    import vlanalyze as vla

    with vla.open_export(export) as ex:
        with vla.select(
            ex, exclude_issues=["blur"], dedupe="min", top=TOP, split=SPLIT, seed=0
        ) as sel:
            sel.write(selection)
            funnel = ", ".join(f"{s} {o}" for s, o in sel.funnel.select("step", "rows_out").rows())
        spec = ",".join(f"{k}={v}" for k, v in SPLIT.items())
        done(
            DemoStep(
                "Select: no blurry images, one per duplicate group, the most unique, split",
                _cmd(
                    "select",
                    export,
                    "--exclude-issue",
                    "blur",
                    "--dedupe",
                    "min",
                    "--top",
                    TOP,
                    "--split",
                    spec,
                    "--seed",
                    0,
                    "-o",
                    selection,
                ),
                look=selection,
                detail=f"rows after each step: {funnel}",
            )
        )
        plan = vla.plan_materialize(ex, selection, dataset, layout="imagefolder")
        vla.materialize(plan)
        done(
            DemoStep(
                "Materialize: the chosen images as <split>/<label>/<name> (an ImageFolder)",
                _cmd("materialize", export, selection, "-o", dataset, "--layout", "imagefolder"),
                look=dataset,
            )
        )
        made = vla.report(ex, report, selection=selection)
        done(
            DemoStep(
                "Report: open it in a browser (offline, one file)",
                _cmd("report", export, "--selection", selection, "-o", report),
                look=made.path,
            )
        )
