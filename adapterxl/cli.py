"""The ``adapterxl`` command: a thin shell over the Python API (``adapterxl.run``, ...)."""

from __future__ import annotations

import functools
from pathlib import Path

import click

from .errors import AdapterXLError
from .modes import MODES as MODE_TABLE


def _friendly_errors(func):
    """Print AdapterXLErrors as one clean ``Error: ...`` line (exit code 2), no traceback unless
    ``adapterxl --verbose``."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except AdapterXLError as exc:
            ctx = click.get_current_context(silent=True)
            if ctx is not None and (ctx.find_root().obj or {}).get("verbose"):
                raise
            click.secho(f"Error: {exc}", fg="red", err=True)
            raise SystemExit(2) from None

    return wrapper


def _apply_verbosity() -> None:
    """Apply the console level (``--quiet`` / ``--verbose``) to adapterxl and the libraries."""
    from . import console

    ctx = click.get_current_context(silent=True)
    options = (ctx.find_root().obj or {}) if ctx is not None else {}
    console.set_verbosity("verbose" if options.get("verbose") else "quiet" if options.get("quiet") else "normal")


def _registry(files: tuple[str, ...]):
    """The built-in tasks and those declared in the ``tasks:`` blocks of ``files`` (``--tasks``)."""
    from .config import load_task_declarations
    from .tasks import BUILTIN

    registry = BUILTIN
    for path in files:
        registry = load_task_declarations(path, registry)
    return registry


TASKS_OPTION = click.option(
    "--tasks",
    "task_files",
    multiple=True,
    type=click.Path(dir_okay=False),
    metavar="FILE",
    help="A run-config or grid file whose tasks: block declares TASK (repeatable).",
)


def _split_languages(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="adapterxl")
@click.option("-v", "--verbose", is_flag=True, help="Everything the libraries print too, and tracebacks of errors.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bars or step lines: headers, results and errors.")
@click.pass_context
def main(ctx: click.Context, verbose: bool, quiet: bool) -> None:
    """adapterxl: intermediate-task transfer to many languages with stackable adapters."""
    if verbose and quiet:
        raise click.UsageError("--verbose and --quiet: choose one")
    ctx.obj = {"verbose": verbose, "quiet": quiet}


@main.command()
@click.option(
    "--output-dir",
    "--out",
    "out_dir",
    default="adapterxl-quickstart",
    show_default=True,
    help="Folder for the generated data, the config it runs, runs and results.",
)
@click.option("--store", default=None, help="Adapter store (default: $ADAPTERXL_STORE or ./adapters_store).")
@click.option("--tiny", is_flag=True, help="Smoke run on the tiny random backbone (seconds; numbers mean nothing).")
@_friendly_errors
def quickstart(out_dir: str, store: str | None, tiny: bool) -> None:
    """Run the whole method offline: multilingual-e5-small and shipped data, a few minutes on a CPU."""
    from .quickstart import quickstart as run_quickstart

    _apply_verbosity()
    run_quickstart(out_dir, store, tiny=tiny, echo=click.echo)


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@click.option("--task", help="Task name (see `adapterxl tasks`); comma-separated for multi-task training.")
@click.option("--model", help="Hub id, local folder, multilingual-e5-small, or tiny-xlmr / tiny-bert.")
@click.option("--mode", type=click.Choice(list(MODE_TABLE)), help="Training mode.")
@click.option("--adapter", "adapter_config", help="adapters config string, e.g. seq_bn.")
@click.option(
    "--intermediate",
    multiple=True,
    help="Store entry to build on (repeatable; modes "
    + ", ".join(name for name, m in MODE_TABLE.items() if m.intermediates != "none")
    + ").",
)
@click.option("--save-as", help="Name of the store entry and run folder.")
@click.option("--store", help="Adapter store folder.")
@click.option("--output-dir", help="Run folder (default runs/NAME).")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--languages", help="Comma-separated evaluation languages (default: all of the task's).")
@click.option("--overwrite", is_flag=True, default=None, help="Replace an existing store entry / run folder.")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override any config key, e.g. --set training.learning_rate=1e-4 (repeatable).",
)
@_friendly_errors
def train(
    config: str | None,
    task,
    model,
    mode,
    adapter_config,
    intermediate,
    save_as,
    store,
    output_dir,
    seed,
    languages,
    overwrite,
    sets,
) -> None:
    """Train and evaluate the run(s) of CONFIG, or one run described by the flags.

    Flags given together with CONFIG override every run in it.
    """
    from .config import apply_overrides, load_runs, parse_override, parse_runs
    from .pipeline import results_path_for, run_all
    from .report import result_lines

    overrides = dict(parse_override(s) for s in sets)
    tasks = _split_languages(task)
    flags = {
        "task": tasks[0] if tasks and len(tasks) == 1 else tasks,
        "model": model,
        "mode": mode,
        "adapter": adapter_config,
        "save_as": save_as,
        "store": store,
        "output_dir": output_dir,
        "seed": seed,
        "overwrite": overwrite,
        "intermediate": list(intermediate) or None,
        "data.languages": _split_languages(languages),
    }
    overrides.update({k: v for k, v in flags.items() if v is not None})
    if config:
        configs = load_runs(config, overrides)
    elif task:
        configs = parse_runs(apply_overrides({}, overrides), "command line")
    else:
        raise click.UsageError("give a CONFIG file or at least --task")
    _apply_verbosity()

    def on_start(i, cfg):
        on = f" on {' + '.join(cfg.intermediate)}" if cfg.intermediate else ""
        task = "+".join(cfg.tasks)
        click.secho(f"[{i + 1}/{len(configs)}] {cfg.name}: {task} - {cfg.mode}{on} - {cfg.model}", bold=True)

    def on_result(result):
        if result.reused:
            click.echo(f"(finished before with this config: reused, not trained again; {result.run_dir})")
        for line in result_lines(result):
            click.echo(line)
        click.echo(
            f"Saved: {result.store_entry or result.model_dir}\nManifest: {Path(result.run_dir) / 'manifest.json'}"
        )

    out = results_path_for(config) if config else None
    run_all(configs, out, on_start=on_start, on_result=on_result)
    if out:
        click.echo(f"Results: {out}")


@main.command()
@click.option("--task", required=True, help="Target task to evaluate on.")
@click.option("--adapter", help="Store entry (adapter or saved setup) to evaluate.")
@click.option("--model", help="Base model location, or a folder saved by a 'full' run (without --adapter).")
@click.option("--languages", help="Comma-separated languages (default: all of the task's).")
@click.option("--split", "eval_split", default="validation", show_default=True, help="Split to evaluate.")
@click.option(
    "--data",
    "data_files",
    multiple=True,
    metavar="SPLIT=PATH",
    help="Local files for a split, {lang} in PATH per language (repeatable).",
)
@click.option("--max-examples", type=int, help="Evaluate on at most this many examples per language.")
@click.option("--max-seq-length", type=int, help="Default: the task family's (384 for QA, else 128).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--store", help="Adapter store folder.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
@TASKS_OPTION
@_friendly_errors
def evaluate(
    task, adapter, model, languages, eval_split, data_files, max_examples, max_seq_length, batch_size, store, output,
    task_files,
) -> None:  # fmt: skip
    """Evaluate a stored adapter setup (or a fully fine-tuned model) zero-shot on TASK. A task declared
    in YAML is known from the adapter's store entry, or from --tasks FILE."""
    from .config import DataConfig, parse_override
    from .files import write_json
    from .pipeline import evaluate_setup
    from .report import attention_table, results_table

    files = {key: str(value) for key, value in (parse_override(d) for d in data_files)}
    data = DataConfig(
        data_files=files,
        languages=_split_languages(languages),
        eval_split=eval_split,
        max_eval_examples=max_examples,
        max_seq_length=max_seq_length,
    )
    _apply_verbosity()
    result = evaluate_setup(
        task, adapter=adapter, model=model, store=store, data=data, batch_size=batch_size, tasks=_registry(task_files)
    )
    click.echo(results_table({adapter or model: result["metrics"]}, result["summary"]["metric"]))
    if result.get("fusion_attention"):
        click.echo(attention_table(result["fusion_attention"]))
    if output:
        write_json(output, result)
        click.echo(f"Results: {output}")


@main.command()
@click.option("--task", required=True, help="Retrieval task: tatoeba, bucc2018, flores, or one declared (--tasks).")
@click.option("--adapter", help="Store entry whose adapter setup is active while embedding.")
@click.option("--model", help="Base model (or a local copy of the adapter's base model).")
@click.option("--languages", help="Comma-separated languages (FLORES: codes such as deu_Latn).")
@click.option("--layer", type=int, help="hidden_states index to pool (0 = embeddings; default per depth).")
@click.option("--split", "eval_split", help="validation / test (BUCC), dev / devtest (FLORES).")
@click.option("--data", "data_files", multiple=True, metavar="SPLIT=PATH", help="Local files for a split ({lang}).")
@click.option("--bucc-dir", type=click.Path(file_okay=False), help="Folder with the original BUCC 2018 files.")
@click.option(
    "--direction",
    type=click.Choice(["en->xx", "xx->en"]),
    default="en->xx",
    show_default=True,
    help="Tatoeba search direction.",
)
@click.option(
    "--precision",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="Similarity search precision (bfloat16: faster, re-scored in float32).",
)
@click.option("--max-examples", type=int, help="At most this many sentence pairs per language (Tatoeba).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--store", help="Adapter store folder.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the results as JSON here.")
@TASKS_OPTION
@_friendly_errors
def retrieve(task, adapter, model, languages, layer, eval_split, data_files, bucc_dir, direction, precision,
             max_examples, batch_size, store, output, task_files) -> None:  # fmt: skip
    """Sentence retrieval straight off an encoder and adapter setup (Tatoeba, BUCC, FLORES-200, or a
    retrieval task declared in a tasks: block)."""
    from .config import DataConfig, parse_override
    from .files import write_json
    from .pipeline import retrieve as run_retrieval
    from .report import results_table

    registry = _registry(task_files)
    files = {key: str(value) for key, value in (parse_override(d) for d in data_files)}
    task_obj = registry.get(task)
    split = eval_split or (task_obj.family.default_split if task_obj.kind == "retrieval" else "validation")
    data = DataConfig(data_files=files, languages=_split_languages(languages), eval_split=split,
                      max_eval_examples=max_examples)  # fmt: skip
    _apply_verbosity()
    result = run_retrieval(
        task,
        adapter=adapter,
        model=model,
        store=store,
        data=data,
        layer=layer,
        batch_size=batch_size,
        direction=direction,
        precision=precision,
        bucc_dir=bucc_dir,
        tasks=registry,
    )
    click.echo(results_table({adapter or model: result["metrics"]}, result["summary"]["metric"]))
    click.echo(f"layer {result['layer']}, split {result['eval_split']}")
    if result.get("note"):
        click.secho(result["note"], fg="yellow")
    if output:
        write_json(output, result)
        click.echo(f"Results: {output}")


@main.command()
@click.argument("task")
@click.option(
    "--model", "translation_model", required=True, help="Seq2seq model id or folder ({lang}: one per language)."
)
@click.option("--to", "languages", required=True, help="Comma-separated target languages.")
@click.option("--output-dir", "--out", "out_dir", default="translated", show_default=True, help="Output folder.")
@click.option("--split", default="train", show_default=True, help="Split to translate.")
@click.option("--data", "data_files", multiple=True, metavar="SPLIT=PATH", help="Local source files for a split.")
@click.option("--max-examples", type=int, help="Translate at most this many examples.")
@click.option("--source-code", help="Source language code of many-to-many models (NLLB: eng_Latn).")
@click.option(
    "--target-code", "target_codes", multiple=True, metavar="LANG=CODE", help="e.g. de=deu_Latn (repeatable)."
)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--num-beams", type=int, default=1, show_default=True)
@TASKS_OPTION
@_friendly_errors
def translate(task, translation_model, languages, out_dir, split, data_files, max_examples, source_code,
              target_codes, batch_size, num_beams, task_files) -> None:  # fmt: skip
    """Machine-translate TASK's English training data (translate-train); cached on disk. A task
    declared in YAML needs --tasks FILE."""
    from .config import DataConfig, parse_override
    from .translate import translate_task_data

    files = {key: str(value) for key, value in (parse_override(d) for d in data_files)}
    codes = {key: str(value) for key, value in (parse_override(c) for c in target_codes)}
    data = DataConfig(data_files=files, max_train_examples=max_examples)
    _apply_verbosity()
    paths = translate_task_data(
        task, translation_model, _split_languages(languages) or [], out_dir, split, data, source_code, codes,
        batch_size=batch_size, num_beams=num_beams, tasks=_registry(task_files),
    )  # fmt: skip
    for lang, path in paths.items():
        click.echo(f"{lang}: {path}")
    template = str(next(iter(paths.values()))).replace(f"/{next(iter(paths))}/", "/{lang}/")
    click.echo(f"Train on it with: data: {{data_files: {{{split}: {template}}}, train_languages: [en, ...]}}")


@main.command()
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@_friendly_errors
def tasks(files: tuple[str, ...]) -> None:
    """List the tasks adapterxl knows, and those declared in FILES (the tasks: blocks of run-config or
    grid files), after checking their declarations."""
    from .config import load_task_declarations
    from .tasks import BUILTIN

    registry, declared = BUILTIN, {}
    for path in files:
        registry = load_task_declarations(path, registry)
        declared.update({name: path for name in registry.declared if name not in declared})
    width = max(len(name) for name in registry)
    for task in registry.values():
        where = f"  [declared in {declared[task.name]}]" if task.name in declared else ""
        click.echo(
            f"{task.name:{width}} {task.kind:12} {task.family.name:15} {len(task.languages):2} lang  "
            f"{task.description}{where}"
        )


@main.command("select")
@click.option("--target", required=True, help="The target task (built-in, or declared: --tasks FILE).")
@click.option("--candidates", required=True, help="Comma-separated store entries: trained intermediate adapters.")
@click.option("--store", help="Adapter store folder.")
@click.option(
    "--parallel", help="A retrieval task of parallel sentences: also score how each candidate aligns the languages."
)
@click.option("--max-examples", type=click.IntRange(min=2), default=500, show_default=True,
              help="At most this many English training examples of the target.")  # fmt: skip
@click.option("--data", "data_files", multiple=True, metavar="SPLIT=PATH", help="Local files of the target's splits.")
@click.option("--output", type=click.Path(dir_okay=False), help="Write the estimates as JSON (report reads them).")
@TASKS_OPTION
@_friendly_errors
def select_command(target, candidates, store, parallel, max_examples, data_files, output, task_files) -> None:
    """Rank intermediate adapters (store entries) for a target task without training: LogME, TextEmb
    and (--parallel) cross-lingual alignment, each from frozen features, and their combined ranking."""
    from .config import DataConfig, parse_override
    from .files import write_json
    from .selection import select

    registry = _registry(task_files)
    files = {key: str(value) for key, value in (parse_override(d) for d in data_files)}
    names = [c.strip() for c in candidates.split(",") if c.strip()]
    _apply_verbosity()
    result = select(target, names, store=store, data=DataConfig(data_files=files) if files else None, tasks=registry,
                    parallel=parallel, max_examples=max_examples, echo=click.echo)  # fmt: skip
    width = max(len(n) for n in names)
    for estimator, scores in result.scores.items():
        click.echo(f"\n{estimator} ({result.seconds.get(estimator, 0):.1f} s):")
        for rank, name in enumerate(result.ranking(estimator), 1):
            click.echo(f"  {rank}. {name:{width}}  {scores[name]:.4f}")
    click.echo("\ncombined (mean rank):")
    for rank, name in enumerate(result.ranking("combined"), 1):
        click.echo(f"  {rank}. {name}")
    click.echo(f"Time: {sum(result.seconds.values()):.1f} s")
    if output:
        write_json(output, result.to_dict())
        click.echo(f"Estimates: {output}")


@main.command("run")
@click.argument("grid_file", type=click.Path(dir_okay=False))
@click.option("--results-dir", help="Where results go (default: the grid's results_dir, else results/<grid>).")
@click.option("--retry-failed", is_flag=True, help="Run the jobs that failed before again.")
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="local",
    default=None,
    metavar="[ADDRESS]",
    help="Run the jobs as Ray tasks, each as soon as the jobs it needs are done: alone, on a Ray instance started on "
    "this machine; 'auto', the cluster `ray start` runs here; or a cluster address (HOST:6379, ray://HOST:10001). "
    "Resources per job: the grid's executor: block.",
)
@click.option("--shard", hidden=True, help="Replaced by --ray.")
@click.option(
    "--only",
    type=click.Choice(["intermediate", "target", "retrieval"]),
    multiple=True,
    help="Run only jobs of this kind (repeatable).",
)
@click.option(
    "--question",
    "questions",
    multiple=True,
    metavar="LABEL",
    help="Run only the jobs of this question of the grid's questions: (repeatable), and the jobs they need.",
)
@_friendly_errors
def run_grid_command(grid_file, results_dir, retry_failed, ray_address, shard, only, questions) -> None:
    """Run an experiment grid (intermediate x target x mode x seed ...); resumes where it stopped."""
    from .grid import load_grid, run_grid

    if shard is not None:
        raise click.UsageError(
            "--shard is gone: `adapterxl run GRID --ray` runs the jobs as Ray tasks on all of this machine's GPUs "
            "(targets start as soon as their intermediate is done); `--ray HOST:6379` on a Ray cluster (SLURM: "
            "README, 'Grids on Ray')"
        )
    grid = load_grid(grid_file, results_dir)
    _apply_verbosity()
    ray = None if ray_address is None else (True if ray_address == "local" else ray_address)
    counts = run_grid(grid, retry_failed=retry_failed, only=tuple(only) or None, echo=click.echo,
                      questions=tuple(questions) or None, ray=ray)  # fmt: skip
    click.echo(", ".join(f"{k} {v}" for k, v in counts.items()) + f". Results: {grid.results_dir}")
    click.echo(f"Report: adapterxl report {grid.results_dir}")
    if counts.get("failed") or counts.get("blocked"):
        raise SystemExit(1)


@main.command("plan")
@click.argument("grid_file", type=click.Path(dir_okay=False))
@click.option("--results-dir", help="The grid's results folder (default: its results_dir).")
@click.option("--no-count", is_flag=True, help="Skip counting tokens (no data or tokenizer is loaded).")
@click.option(
    "--measure", is_flag=True, help="First time a short run of each job kind on this machine (plan-probe.json)."
)
@click.option("--question", "questions", multiple=True, metavar="LABEL", help="Only the jobs of this question.")
@click.option(
    "--gpus",
    type=click.IntRange(min=1),
    help="Also estimate the wall time on N GPUs, one job each, as `run --ray` runs them (targets after their "
    "intermediate).",
)
@_friendly_errors
def plan_command(grid_file, results_dir, no_count, measure, questions, gpus) -> None:
    """List a grid's jobs, which are done, and estimate their compute before anything runs."""
    from .grid import load_grid, plan, plan_summary, probe

    grid = load_grid(grid_file, results_dir)
    if measure:
        _apply_verbosity()
        from . import console

        console.set_verbosity("quiet")  # the probe's own bars and lines would bury the plan
        probe(grid, echo=click.echo)
    for path in grid.damaged():
        click.secho(f"Warning: {path} is damaged (not valid JSON): its job counts as not finished", fg="yellow")
    _apply_verbosity()
    rows = plan(grid, count=not no_count, questions=tuple(questions) or None)
    for r in rows:
        mark = "~" if r.get("tokens_source") == "estimate" else " "
        tokens = f"{mark}{r['train_tokens'] / 1e6:8.2f}M tok" if "train_tokens" in r else ""
        eta = f"{_duration(r['estimate_seconds']):>8} ({r['throughput_source']})" if "estimate_seconds" in r else ""
        click.echo(f"{r['status']:8} {r['kind']:12} {r['id']:60} {tokens} {eta}")
    totals = plan_summary(rows, gpus=gpus)
    click.echo(f"{totals['jobs']} jobs ({', '.join(f'{v} {k}' for k, v in totals['kinds'].items())}): "
               f"{', '.join(f'{v} {k}' for k, v in totals['status'].items())}")  # fmt: skip
    if not no_count:
        line = f"To do: {totals['todo_train_tokens'] / 1e6:.2f}M training tokens"
        if totals["todo_estimate_seconds"] is not None:
            line += (
                f", about {_duration(totals['todo_estimate_seconds'])} of training and evaluation at the "
                "throughput shown"
            )
        if totals["todo_without_throughput"]:
            line += " (no throughput for some jobs: set throughput: {adapter: TOKENS_PER_S, full: ...} in the grid)"
        click.echo(line)
        parallel = totals["parallel"]
        if parallel is not None and parallel["seconds"] > 0:
            click.echo(
                f"On {gpus} GPU{'s' if gpus > 1 else ''} (one job each, a job as soon as its needs are done): about "
                f"{_duration(parallel['seconds'])}, GPUs busy {parallel['busy']:.0%} of it; the longest chain of "
                f"jobs that need each other takes {_duration(parallel['critical_path'])}, the floor on any number "
                "of GPUs"
            )
        elif gpus is not None:
            click.echo(f"--gpus {gpus}: no wall-time estimate, some jobs have no throughput (see above)")
        if any(r.get("tokens_source") == "estimate" for r in rows):
            click.echo(
                "~ estimated from published dataset sizes and mean tokens per example (the data or tokenizer could "
                "not be loaded here): expect the real counts to differ by up to a few tens of percent"
            )


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


@main.command("report")
@click.argument("results_dir", type=click.Path(file_okay=False))
@click.option("--output-dir", "--out", "out_dir", help="Where to write the report (default RESULTS_DIR/report).")
@click.option("--no-plots", is_flag=True, help="Tables only.")
@click.option("--highlight", help="Comma-separated languages to highlight in scaling curves (default: low-resource).")
@_friendly_errors
def report_command(results_dir, out_dir, no_plots, highlight) -> None:
    """Markdown and CSV tables, and PNG plots, from a grid's results folder."""
    from .report import LOW_RESOURCE, build_report

    if not Path(results_dir, "jobs").is_dir():
        raise click.BadParameter(
            f"{results_dir!r} has no jobs/ folder: give the results_dir of a grid", param_hint="RESULTS_DIR"
        )
    out = build_report(results_dir, out_dir, plots=not no_plots,
                       highlight=tuple(_split_languages(highlight) or LOW_RESOURCE))  # fmt: skip
    for path in out["files"]:
        click.echo(str(path))


@main.group()
def store() -> None:
    """The local adapter store, and sharing its entries on the Hugging Face Hub."""


@store.command("list")
@click.option("--store", "root", help="Adapter store folder.")
@_friendly_errors
def store_list(root: str | None) -> None:
    """List the entries of the store: task, base model, method, size, composition, score."""
    from .config import default_store
    from .report import format_table
    from .store import AdapterStore

    entries = AdapterStore(root or default_store()).entries()
    if not entries:
        click.echo(f"The store {root or default_store()!r} is empty.")
        return
    rows = []
    for e in entries:
        m = e.manifest
        score = f"{m.summary.get('metric')} {m.summary.get('avg', float('nan')):.1f}" if m.summary else "-"
        setup = " -> ".join(m.setup or []) or "-"
        rows.append(
            [e.name, m.task, m.mode or "-", m.adapter_config or "-", m.base_model, f"{e.size / 1e6:.2f}", setup, score]
        )
    click.echo(format_table(["name", "task", "mode", "adapter", "base model", "MB", "setup", "score"], rows))


@store.command("show")
@click.argument("name")
@click.option("--store", "root", help="Adapter store folder.")
@_friendly_errors
def store_show(name: str, root: str | None) -> None:
    """Show an entry: what it is, how it was trained, its scores; checks its files' sha256."""
    from .config import default_store
    from .store import AdapterStore

    store_ = AdapterStore(root or default_store())
    entry = store_.verify(name)
    m = entry.manifest
    size = entry.size
    click.echo(f"{entry.name}  ({entry.path})")
    for label, value in [
        ("kind", m.kind),
        ("task", m.task),
        ("mode", m.mode),
        ("adapter config", m.adapter_config),
        ("composition", m.composition or " -> ".join(m.setup or [])),
        ("base model", m.base_model),
        ("seed", m.seed),
        ("license", m.license),
        ("versions", ", ".join(f"{k} {v}" for k, v in (m.versions or {}).items())),
        ("files", f"{len(m.files or {})} (sha256 verified), {size / 1e6:.2f} MB"),
    ]:
        click.echo(f"  {label:15} {value}")
    metrics = m.metrics or {}
    summary = m.summary or {}
    if metrics and summary.get("metric") in next(iter(metrics.values()), {}):
        from .report import results_table

        click.echo(results_table({name: metrics}, summary["metric"]))


@store.command("export-peft")
@click.argument("name")
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--store", "root", help="Adapter store folder.")
@click.option("--base", "base_model", help="base_model_name_or_path to record (default: the entry's base model).")
@click.option("--overwrite", is_flag=True, help="Replace an existing PEFT folder at OUT_DIR.")
@click.option("--verify", is_flag=True, help="Load the base model and check that PEFT reproduces the hidden states.")
@_friendly_errors
def store_export_peft(name, out_dir, root, base_model, overwrite, verify) -> None:
    """Write a LoRA entry as a PEFT LoRA folder for the bare encoder (no head)."""
    from .config import default_store
    from .interop import export_peft
    from .store import AdapterStore

    entry = AdapterStore(root or default_store()).verify(name)
    out = export_peft(entry, out_dir, base_model=base_model, overwrite=overwrite, verify=verify)
    click.echo(f"Exported {name} to {out} (PEFT LoRA{', outputs verified' if verify else ''})")


@store.command("import-peft")
@click.argument("peft_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--as", "name", required=True, help="Name of the new store entry.")
@click.option("--store", "root", help="Adapter store folder.")
@click.option("--base", "base_model", help="Base model (default: the PEFT config's base_model_name_or_path).")
@click.option("--drop-modules-to-save", is_flag=True, help="Convert the LoRA only, leaving out modules_to_save.")
@click.option("--overwrite", is_flag=True, help="Replace an existing entry of that name.")
@_friendly_errors
def store_import_peft(peft_dir, name, root, base_model, drop_modules_to_save, overwrite) -> None:
    """Add a PEFT LoRA folder (XLM-R/BERT) to the store as an adapter without a head."""
    from .config import default_store
    from .interop import import_peft_to_store
    from .store import AdapterStore

    entry = import_peft_to_store(AdapterStore(root or default_store()), peft_dir, name, base_model=base_model,
                                 drop_modules_to_save=drop_modules_to_save, overwrite=overwrite)  # fmt: skip
    click.echo(f"Imported {peft_dir} as {entry.name} ({entry.manifest.adapter_config}, base model {entry.base_model})")


@store.command("push")
@click.argument("name")
@click.option("--repo", "repo_id", required=True, help="Hub repo ORG_OR_USER/NAME (created if missing).")
@click.option("--store", "root", help="Adapter store folder.")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--dry-run", type=click.Path(file_okay=False), help="Write the files that would be uploaded here.")
@_friendly_errors
def store_push(name: str, repo_id: str, root: str | None, private: bool, dry_run: str | None) -> None:
    """Upload an entry to the Hugging Face Hub (token: your HF login or HF_TOKEN)."""
    from .config import default_store
    from .store import AdapterStore, push

    files = push(AdapterStore(root or default_store()), name, repo_id, dry_run=dry_run, private=private)
    verb = f"Would upload to {repo_id} (copied to {dry_run})" if dry_run else f"Uploaded to {repo_id}"
    click.echo(f"{verb}: {len(files)} files")
    for file in files:
        click.echo(f"  {file}")


@store.command("pull")
@click.argument("repo_id")
@click.option("--name", help="Store entry name (default: the repo's name).")
@click.option("--store", "root", help="Adapter store folder.")
@click.option("--revision", help="Branch, tag or commit of the repo.")
@click.option("--trust-pickle", is_flag=True, help="Accept pickled .bin weights (they can run code when loaded).")
@click.option("--overwrite", is_flag=True, help="Replace an existing entry of that name.")
@_friendly_errors
def store_pull(repo_id, name, root, revision, trust_pickle, overwrite) -> None:
    """Download an adapter or setup from the Hub (adapterxl or AdapterHub repos) into the store."""
    from .config import default_store
    from .store import AdapterStore, pull

    entry = pull(AdapterStore(root or default_store()), repo_id, name, revision=revision,
                 trust_pickle=trust_pickle, overwrite=overwrite)  # fmt: skip
    click.echo(f"Pulled {repo_id} into {entry.path} ({entry.kind}, base model {entry.base_model})")


@store.command("rm")
@click.argument("name")
@click.option("--store", "root", help="Adapter store folder.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@_friendly_errors
def store_rm(name: str, root: str | None, yes: bool) -> None:
    """Delete an entry from the store."""
    from .config import default_store
    from .store import AdapterStore

    store_ = AdapterStore(root or default_store())
    entry = store_.get(name)
    if not yes:
        click.confirm(f"Delete {entry.path}?", abort=True)
    store_.remove(name)
    click.echo(f"Removed {name}")


if __name__ == "__main__":
    main()
