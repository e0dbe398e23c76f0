"""`vsr batch`: many files, or a TOML job file, with a report (the work is in vsr.batch)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vsr.cli.args import add_option_groups, add_options, model_extra_from_args, preset_from_args
from vsr.cli.console import Aborted, Bar, Console
from vsr.errors import UsageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from vsr.batch import BatchJob, BatchReport, FileResult
    from vsr.cluster import ClusterSpec
    from vsr.cluster.remote import Staging


def add_parser(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=help,
        description="Upscale files and folders (mirrored into OUTDIR) under one preset, or "
        "the jobs of a TOML job file. Finished files are skipped; a failed file is reported "
        "and the rest go on.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="files, folders, or one JOBS.toml")
    p.add_argument("-o", "--output", help="output folder (required unless the job file sets it)")
    add_options(p, name, "container", "overwrite", "skip_corrupt")
    p.add_argument("--jobs", "-j", type=int, default=1, help="files at once (one per GPU)")
    p.add_argument("--dry-run", "-n", action="store_true", help="print the plan and stop")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress or notices")
    p.add_argument("--no-html", action="store_true", help="skip the HTML report")
    add_options(p, name, "allow_outside", "checkpoint_every")
    add_options(p, name, "cluster", "workers", "chunk_seconds")
    add_option_groups(p, name)
    return p


def cluster_from_args(args: argparse.Namespace) -> ClusterSpec | None:
    """--cluster and its companions; Ray's absence is a usage error before any planning."""
    from vsr.cluster import ClusterSpec, parse_cluster, require_ray

    if args.cluster is None:
        if args.workers is not None:
            raise UsageError(
                "--workers needs --cluster (on one machine, --jobs runs files at once)"
            )
        return None
    address = parse_cluster(args.cluster)
    require_ray()
    return ClusterSpec(address, args.workers, args.chunk_seconds)


def _stage_urls(args: argparse.Namespace) -> Staging | None:
    """fsspec URLs among the inputs or -o: copies in the work folder, planned in their place."""
    from vsr.cluster.remote import stage

    staging = stage(list(args.inputs), args.output)
    if staging is not None:
        args.inputs, args.output = staging.inputs, staging.output
    return staging


def plan_from_args(args: argparse.Namespace) -> tuple[list[BatchJob], Path]:
    """The jobs and the report folder for `vsr batch` arguments."""
    from vsr.batch import job_file_outdir, plan_batch, plan_job_file

    preset, overrides = preset_from_args(args, "batch")
    model_extra = model_extra_from_args(args)
    inputs = [Path(i) for i in args.inputs]
    if len(inputs) == 1 and inputs[0].suffix.lower() == ".toml":
        jobs = plan_job_file(
            inputs[0],
            output_dir=args.output,
            overrides=overrides,
            model_extra=model_extra,
            overwrite=True if args.overwrite else None,
            allow_outside=args.allow_outside,
        )
        if preset is not None:
            raise UsageError("--preset does not apply to a job file; set preset = ... in the file")
        report_dir = Path(args.output) if args.output else job_file_outdir(inputs[0])
        return jobs, report_dir
    if not args.output:
        raise UsageError("expected -o OUTDIR, the folder to write the results into")
    if args.jobs < 1:
        raise UsageError(f"expected --jobs of at least 1, got {args.jobs}")
    jobs = plan_batch(
        inputs,
        args.output,
        preset=preset,
        overrides=overrides,
        container=args.container,
        model_extra=model_extra,
        temporal_strength=args.temporal_strength,
        overwrite=args.overwrite,
        skip_corrupt=args.skip_corrupt,
    )
    return jobs, Path(args.output)


def run(args: argparse.Namespace) -> int:
    from vsr.batch import format_plan, format_table, run_batch
    from vsr.report import write_reports

    cluster = cluster_from_args(args)
    staging = _stage_urls(args) if cluster is not None else None
    jobs, report_dir = plan_from_args(args)
    if args.dry_run:
        if args.json:
            print(json.dumps({"plan": [j.to_dict() for j in jobs]}, indent=2))
        else:
            print(format_plan(jobs))
        return 0
    show = not args.quiet
    console = Console(notices=show, progress=show)
    bars: dict[int, Bar] = {}

    def progress(job: BatchJob, done: int, total: int | None) -> None:
        bar = bars.get(job.number)
        if bar is None:
            bar = bars[job.number] = console.bar(f"[{job.number}/{len(jobs)}] {job.input.name}")
        bar(done, total)

    def on_file(res: FileResult) -> None:
        bar = bars.pop(res.job.number, None)
        if bar is not None:
            bar.close()
        if show and res.status in ("done", "failed"):
            detail = res.reason if res.status == "failed" else f"{res.frames} frames"
            console.notify(
                f"[{res.job.number}/{len(jobs)}] {res.job.input}: {res.status} ({detail})"
            )

    try:
        if cluster is not None:
            report = _run_on_cluster(jobs, cluster, report_dir, console, on_file)
        else:
            report = run_batch(
                jobs,
                workers=args.jobs,
                output_dir=report_dir,
                progress=progress,
                notify=console.notify,
                on_file=on_file,
            )
    finally:
        for bar in bars.values():
            bar.close()
    write_reports(report, report_dir, html=not args.no_html)
    if staging is not None:
        finished = [r.job.output for r in report.results if r.status in ("done", "skipped")]
        staging.upload([p for p in finished if p.is_file()], report_dir)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_table(report))
    if report.interrupted:
        raise Aborted
    if report.failed:
        codes = {r.exit_code for r in report.failed}
        # One kind of failure keeps its own code (3: bad input ...); a mix is plain 1.
        return codes.pop() if len(codes) == 1 else 1
    return 0


def _run_on_cluster(
    jobs: list[BatchJob],
    cluster: ClusterSpec,
    report_dir: Path,
    console: Console,
    on_file: Callable[[FileResult], None],
) -> BatchReport:
    """The batch on Ray, with one bar for the frames of every worker together."""
    from vsr.cluster.ray_backend import run_on_ray

    where = "a local Ray" if cluster.local else cluster.address
    bar = console.bar(f"{len(jobs)} file{'s' if len(jobs) != 1 else ''} on {where}")
    try:
        return run_on_ray(
            jobs,
            cluster,
            output_dir=report_dir,
            progress=bar,
            notify=console.notify,
            on_file=on_file,
        )
    finally:
        bar.close()
