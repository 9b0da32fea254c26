"""Long runs keep checkpoints (training.save_steps) and continue from the last one after a crash."""

from __future__ import annotations

import pytest
from conftest import run_config

from adapterxl import RunConfig, run
from adapterxl.training import DevSelection


class Crash(RuntimeError):
    pass


@pytest.mark.parametrize("mode", ["adapter", "full"])
def test_a_crashed_run_continues_from_its_checkpoint_to_the_same_result(tmp_path, nli_files, monkeypatch, mode):
    fields = {
        "task": "mnli",
        "mode": mode,
        "data": {"data_files": nli_files["mnli"], "languages": ["en"]},
        "training": {"epochs": 2, "save_steps": 5, "eval_steps": 4, "learning_rate": 2e-3 if mode != "full" else 2e-4},
    }
    whole = run(RunConfig.from_dict(run_config(tmp_path / "a", save_as="whole", **fields)))
    assert whole.manifest.resumed_from_step is None

    config = RunConfig.from_dict(run_config(tmp_path / "b", save_as="crashy", **fields))
    original = DevSelection.on_step_end

    def crash_at_step_12(self, args, state, control, **kwargs):
        original(self, args, state, control, **kwargs)
        if state.global_step == 12:
            raise Crash("simulated crash")

    monkeypatch.setattr(DevSelection, "on_step_end", crash_at_step_12)
    with pytest.raises(Crash):
        run(config)
    checkpoints = sorted(p.name for p in (config.run_dir / "trainer" / "train").glob("checkpoint-*"))
    assert checkpoints == ["checkpoint-10"]  # save_total_limit=1: only the latest is kept
    monkeypatch.setattr(DevSelection, "on_step_end", original)

    resumed = run(config)
    assert resumed.manifest.resumed_from_step == {"train": 10}
    assert resumed.manifest.dev["steps"] == whole.manifest.dev["steps"] == 26  # 200 examples / 16, 2 epochs
    # The dev-selection history from before the crash survived, and the numbers match the uninterrupted run.
    scored = [h for h in resumed.manifest.dev["history"] if "dev_accuracy" in h]
    assert [h["step"] for h in scored] == [4, 8, 12, 16, 20, 24, 26]
    assert scored == [h for h in whole.manifest.dev["history"] if "dev_accuracy" in h]
    assert resumed.manifest.dev["best"] == pytest.approx(whole.manifest.dev["best"], abs=1e-9)
    assert resumed.metrics["en"]["accuracy"] == pytest.approx(whole.metrics["en"]["accuracy"], abs=1e-9)
    assert not (config.run_dir / "trainer").exists()  # scratch checkpoints go once the run is finished


def test_a_checkpoint_cut_short_by_a_kill_is_skipped_for_the_last_whole_one(tmp_path):
    from adapterxl.training import SELECTION_STATE, last_whole_checkpoint

    assert last_whole_checkpoint(tmp_path) is None
    for step, whole in ((10, True), (20, True), (30, False)):  # 30: killed while saving
        (tmp_path / f"checkpoint-{step}").mkdir()
        if whole:
            (tmp_path / f"checkpoint-{step}" / SELECTION_STATE).write_text("{}")
    (tmp_path / "checkpoint-x").mkdir()
    assert last_whole_checkpoint(tmp_path) == str(tmp_path / "checkpoint-20")
