"""A grid's research questions: each its own slice of the grid (shared jobs run once), ``--question``
runs one slice with what it needs, and the report gives every question its own section with its
tables, paired seed-by-seed comparisons and figures."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner
from test_grid import grid_doc

from adapterxl.cli import main
from adapterxl.errors import ConfigError
from adapterxl.grid import parse_grid, plan, run_grid
from adapterxl.report import build_report, paired_difference


def study_doc(tmp_path, nli_files, panx_files, **extra) -> dict:
    """test_grid's grid (tiny backbone, xnli and panx targets, 2 seeds) with three intermediates and two
    questions over them."""
    doc = grid_doc(tmp_path, nli_files, panx_files)
    doc.pop("modes")
    mnli = nli_files["mnli"]
    return {
        **doc,
        "intermediates": {
            "big": {"task": "mnli", "data": {"data_files": mnli, "max_train_examples": 64}},
            "small": {"task": "mnli", "data": {"data_files": mnli, "max_train_examples": 32}},
            "other": {"task": "mnli", "data": {"data_files": mnli, "max_train_examples": 48}},
        },
        "questions": {
            "which": {
                "ask": "Which intermediate helps?",
                "intermediates": ["big", "small"],
                "compare": [["stack on big", "stack on small"]],
                "figures": ["heatmap"],
            },
            "size": {
                "ask": "Does size matter?",
                "intermediates": ["big"],
                "targets": ["xnli"],
                "intermediate_sizes": [8, 16, None],
                "figures": ["scaling"],
            },
        },  # fmt: skip
        **extra,
    }


def test_questions_expand_their_own_slices_and_share_jobs(tmp_path, nli_files, panx_files):
    grid = parse_grid(study_doc(tmp_path, nli_files, panx_files))
    by_id = {j.id: j for j in grid.jobs}
    assert len(by_id) == len(grid.jobs)  # one job per id
    # "which": 2 intermediates, 2 targets x 2 seeds x (baseline + 2 stacks); "size": big at n8, n16 (+ the shared
    # big), xnli x 2 seeds x (baseline + 3 sizes), of which the baseline and the all-data stack are shared.
    assert sorted(j.id for j in grid.jobs if j.kind == "intermediate") == [
        "tiny-xlmr--big--adapter", "tiny-xlmr--big--n16--adapter", "tiny-xlmr--big--n8--adapter",
        "tiny-xlmr--small--adapter",
    ]  # fmt: skip
    assert sum(j.kind == "target" for j in grid.jobs) == 2 * 2 * 3 + 2 * 2  # "other" belongs to no question
    assert by_id["tiny-xlmr--xnli--stack--on-big--s1"].labels["questions"] == ["which", "size"]
    assert by_id["tiny-xlmr--panx--stack--on-big--s1"].labels["questions"] == ["which"]
    assert by_id["tiny-xlmr--xnli--stack--on-big--n16--s2"].labels["questions"] == ["size"]
    assert by_id["tiny-xlmr--xnli--adapter--s2"].labels["questions"] == ["which", "size"]
    # a fusion over a question's subset is named by it, so two questions' fusions never collide
    doc = study_doc(tmp_path, nli_files, panx_files)
    doc["questions"]["which"]["modes"] = ["fuse"]
    fused = [j for j in parse_grid(doc).jobs if j.labels["mode"] == "fuse"]
    assert {j.labels["intermediate"] for j in fused} == {"fusion-big-small"} and all(len(j.needs) == 2 for j in fused)
    # without questions, nothing changes: every intermediate x target, no questions label
    plain = study_doc(tmp_path, nli_files, panx_files)
    plain.pop("questions")
    jobs = parse_grid(plain).jobs
    assert sum(j.kind == "target" for j in jobs) == 2 * 2 * (1 + 3) and not any("questions" in j.labels for j in jobs)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ask": ""}, "ask: the question in one sentence"),
        (
            {"intermediates": ["bigg"]},
            "intermediates ['bigg'] are not among the grid's intermediates (did you mean 'big'?)",
        ),
        ({"targets": ["xnil"]}, "(did you mean 'xnli'?)"),
        ({"figures": ["heatmaps"]}, "figures: a list of ['heatmap', 'languages', 'uriel', 'scaling', 'distance']"),
        ({"compare": ["stack on big"]}, "compare: pairs of setups"),
        ({"modes": ["stak"]}, "questions.which: modes ['stak'] are not grid modes (did you mean 'stack'?)"),
        ({"intermediate_sizes": [0]}, "questions.which: intermediate_sizes must be positive integers"),
        ({"seeds": [1]}, "questions.which: unknown key 'seeds'"),
        ({"targets": [], "retrieval": []}, "no target and no retrieval task"),
    ],
)
def test_bad_questions_are_named(tmp_path, nli_files, panx_files, change, message):
    doc = study_doc(tmp_path, nli_files, panx_files)
    doc["questions"]["which"].update(change)
    with pytest.raises(ConfigError) as err:
        parse_grid(doc)
    assert message in str(err.value), str(err.value)


def test_a_question_runs_alone_and_the_report_answers_each(tmp_path, nli_files, panx_files):
    doc = study_doc(tmp_path, nli_files, panx_files)
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(doc), encoding="utf-8")
    grid = parse_grid(doc)
    wanted = grid.question_jobs(("size",))
    assert {j.id for j in grid.jobs if "size" in j.labels["questions"]} <= wanted
    assert "tiny-xlmr--big--adapter" in wanted and "tiny-xlmr--small--adapter" not in wanted
    assert {r["id"] for r in plan(grid, count=False, questions=("size",))} == wanted
    with pytest.raises(ConfigError, match="'sise' is not one of grid g's questions \\(did you mean 'size'\\?\\)"):
        grid.question_jobs(("sise",))

    result = CliRunner().invoke(main, ["-q", "run", str(path), "--question", "size"])
    assert result.exit_code == 0, result.output
    assert f"done {len(wanted)}" in result.output
    done = {p.stem for p in (tmp_path / "results" / "jobs").glob("*.json")}
    assert done == wanted
    assert CliRunner().invoke(main, ["run", str(path), "--question", "nope"]).exit_code != 0

    counts = run_grid(parse_grid(doc), progress=False, echo=lambda *a: None)
    assert counts["done"] == len(grid.jobs) and counts["failed"] == 0
    out = build_report(tmp_path / "results", echo=lambda *a: None)
    text = out["report"].read_text(encoding="utf-8")
    assert "## which: Which intermediate helps?" in text and "## size: Does size matter?" in text
    assert text.index("## which") < text.index("## size") < text.index("# All setups")
    which = text[text.index("## which") : text.index("## size")]
    assert "stack on big (n16)" not in which and "stack on small" in which  # its own slice only
    # the paired comparison matches the job records, seed by seed
    rows = {(r["target"], r["setup"]): r for r in out["rows"]}
    a, b = rows[("xnli", "stack on big")], rows[("xnli", "stack on small")]
    d = paired_difference(a, b)

    def zero_shot(job):
        record = json.loads((tmp_path / "results" / "jobs" / f"{job}.json").read_text())
        return (record["metrics"]["de"]["accuracy"] + record["metrics"]["fr"]["accuracy"]) / 2

    diffs = [zero_shot(f"tiny-xlmr--xnli--stack--on-big--s{s}") - zero_shot(f"tiny-xlmr--xnli--stack--on-small--s{s}")
             for s in (1, 2)]  # fmt: skip
    assert d["seeds"] == 2 and d["mean"] == pytest.approx(sum(diffs) / 2)
    assert d["std"] == pytest.approx(abs(diffs[0] - diffs[1]) / 2**0.5)
    assert f"| xnli | {d['mean']:+.1f} ± {d['std']:.1f} | 2 |" in which
    # figures per question, named by it; none for the whole grid
    names = {p.name for p in out["files"] if p.suffix == ".png"}
    assert "which-heatmap-tiny-xlmr.png" in names and "size-scaling-tiny-xlmr-xnli-big-stack.png" in names
    assert not any(n.startswith(("heatmap", "languages", "scaling")) for n in names)
    assert all(f"![{n[:-4]}]({n})" in text for n in names)

    # a question added later: the finished records are relabelled, nothing runs again
    doc["questions"]["again"] = {"ask": "Again?", "intermediates": ["small"], "targets": ["panx"]}
    counts = run_grid(parse_grid(doc), progress=False, echo=lambda *a: None)
    assert counts["done"] == len(grid.jobs)
    record = json.loads((tmp_path / "results" / "jobs" / "tiny-xlmr--panx--stack--on-small--s1.json").read_text())
    assert record["labels"]["questions"] == ["which", "again"]
    assert "## again: Again?" in build_report(tmp_path / "results", plots=False)["report"].read_text()
