"""The sampling stage with the transformers backend: records, seeds, resume after a kill, refusals, bad input."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from openrlhf_distill.generation.backend import Request
from openrlhf_distill.generation.generate import ArgumentsChanged, SamplingConfig, generate_samples
from openrlhf_distill.records import RecordError
from openrlhf_distill.tasks import get_task


@pytest.fixture(scope="module")
def hf(tiny_model):
    from openrlhf_distill.generation.hf_backend import HFBackend

    return HFBackend(tiny_model, batch_size=8, dtype="float32")


def _prompts(path, n=6, task="arithmetic"):
    rows = [
        {"id": f"p{i}", "task": task, "prompt": f"what is {i} + {i + 1}?", "gold": str(2 * i + 1)} for i in range(n)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _read_dir(out):
    rows = []
    for name in sorted(os.listdir(out)):
        if name.startswith("shard-") and name.endswith(".jsonl"):
            with open(os.path.join(out, name)) as f:
                rows += [json.loads(line) for line in f]
    return rows


def test_hf_backend_greedy_is_plain_generate_for_string_and_chat_prompts(hf, tiny_model):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    chat = [{"role": "user", "content": "what is 2 + 3?"}]
    requests = [Request("the total is", 0.0, 2, 6, seed=1), Request(chat, 0.0, 1, 6, seed=2)]
    string_out, chat_out = hf.generate(requests)
    assert len(string_out) == 2 and string_out[0] == string_out[1]  # greedy: n identical samples

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)
    for prompt, (completion, *_) in (("the total is", string_out), (chat, chat_out)):
        text = (
            prompt
            if isinstance(prompt, str)
            else tok.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        )
        ids = tok(text, return_tensors="pt", add_special_tokens=isinstance(prompt, str))
        ref = model.generate(**ids, max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id)
        new = ref[0, ids.input_ids.shape[1] :].tolist()
        if tok.eos_token_id in new:
            new = new[: new.index(tok.eos_token_id) + 1]
        assert completion.text == tok.decode(new, skip_special_tokens=True)
        assert completion.num_tokens == len(new)


def test_hf_backend_cuts_at_stop_strings_and_reports_why_it_stopped(hf):
    [free] = hf.generate([Request("the answer is", 1.0, 4, 12, seed=3)])
    assert all(c.finish_reason in ("stop", "length") and c.num_tokens <= 12 for c in free)
    stop = next((c.text[2:4] for c in free if len(c.text) >= 4 and c.text[2:4].strip()), None)
    assert stop, "the random model produced no text long enough to pick a stop string from"
    [stopped] = hf.generate([Request("the answer is", 1.0, 4, 12, seed=3, stop=(stop,))])
    assert [c.text for c in stopped] == [c.text.split(stop)[0] for c in free]  # same seed: the same samples, cut
    assert all(c.finish_reason == "stop" for c, f in zip(stopped, free, strict=True) if stop in f.text)


def test_samples_are_numbered_across_temperatures_and_carry_the_task_layers_answer(tmp_path, hf):
    config = SamplingConfig(
        role="student", temperatures=(0.5, 1.0), n_per_temperature=3, max_new_tokens=8, shard_size=4
    )
    summary = generate_samples(
        _prompts(tmp_path / "p.jsonl"),
        str(tmp_path / "out"),
        model="tiny",
        backend="hf",
        config=config,
        make_backend=lambda: hf,
        progress=False,
    )
    rows = _read_dir(tmp_path / "out")
    assert summary["samples"] == len(rows) == 6 * 2 * 3
    assert sorted(os.listdir(tmp_path / "out")) == [
        "manifest.json",
        "shard-00000.jsonl",
        "shard-00001.jsonl",
        "summary.json",
    ]
    for qid in {r["id"] for r in rows}:
        mine = [r for r in rows if r["id"] == qid]
        assert sorted(r["sample_index"] for r in mine) == list(range(6))
        assert {r["temperature"] for r in mine if r["sample_index"] < 3} == {0.5}
    task = get_task("arithmetic")
    for r in rows:
        assert r["source"] == "student" and (r["answer"], r["extraction"]) == tuple(
            vars(task.extract(r["response"])).values()
        )
    assert summary["tokens"] == sum(r["num_tokens"] for r in rows)


def test_same_seed_same_samples_and_another_seed_other_samples(tmp_path, hf):
    prompts = _prompts(tmp_path / "p.jsonl", n=4)

    def run(out, seed):
        config = SamplingConfig(role="teacher", temperatures=(1.0,), n_per_temperature=2, max_new_tokens=8, seed=seed)
        generate_samples(
            prompts,
            str(tmp_path / out),
            model="tiny",
            backend="hf",
            config=config,
            make_backend=lambda: hf,
            progress=False,
        )
        return [r["response"] for r in _read_dir(tmp_path / out)]

    assert run("a", 0) == run("b", 0)
    assert run("a2", 0) != run("c", 1)


def test_a_finished_run_rerun_loads_no_model_and_other_arguments_are_refused(tmp_path, hf):
    prompts, out = _prompts(tmp_path / "p.jsonl"), str(tmp_path / "out")
    config = SamplingConfig(role="teacher", temperatures=(1.0,), n_per_temperature=1, max_new_tokens=4)
    generate_samples(prompts, out, model="tiny", backend="hf", config=config, make_backend=lambda: hf, progress=False)
    before = _read_dir(out)

    def no_model():
        raise AssertionError("a complete rerun must not start a backend")

    again = generate_samples(prompts, out, model="tiny", backend="hf", config=config, make_backend=no_model)
    assert again["samples"] == 6 and _read_dir(out) == before
    longer = SamplingConfig(role="teacher", temperatures=(1.0,), n_per_temperature=1, max_new_tokens=5)
    with pytest.raises(ArgumentsChanged, match=r"max_new_tokens: 4 -> 5"):
        generate_samples(prompts, out, model="tiny", backend="hf", config=longer, make_backend=no_model)
    generate_samples(
        prompts,
        out,
        model="tiny",
        backend="hf",
        config=longer,
        make_backend=lambda: hf,
        overwrite=True,
        progress=False,
    )
    assert json.load(open(os.path.join(out, "manifest.json")))["max_new_tokens"] == 5


def test_an_output_folder_holding_the_prompts_is_refused_before_any_sampling(tmp_path):
    prompts = _prompts(tmp_path / "p.jsonl")
    config = SamplingConfig(role="teacher", temperatures=(1.0,), n_per_temperature=1, max_new_tokens=4)

    def no_model():
        raise AssertionError("refused output folders must not start a backend")

    with pytest.raises(RecordError, match=r"is, or holds, an input of `generate` \(.*p\.jsonl\)"):
        generate_samples(prompts, str(tmp_path), model="tiny", backend="hf", config=config, make_backend=no_model)
    assert os.listdir(tmp_path) == ["p.jsonl"]


CLI = [sys.executable, "-m", "openrlhf_distill.cli", "generate", "--role", "teacher", "--no-progress"]


@pytest.mark.slow
def test_a_run_killed_mid_way_resumes_to_exactly_the_samples_of_an_uninterrupted_run(tmp_path, tiny_model):
    prompts = _prompts(tmp_path / "p.jsonl", n=16)
    args = [
        "--model",
        tiny_model,
        "--prompts",
        prompts,
        "--temperatures",
        "0.7,1.0",
        "--n-per-temperature",
        "2",
        "--max-new-tokens",
        "48",
        "--shard-size",
        "2",
        "--hf.batch_size",
        "2",
        "--backend",
        "hf",
    ]
    killed_out = tmp_path / "killed"
    proc = subprocess.Popen(CLI + args + ["--out", str(killed_out)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while time.time() < deadline and not (killed_out / "shard-00001.jsonl").exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:]
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    shards_at_kill = sorted(n for n in os.listdir(killed_out) if n.startswith("shard-") and n.endswith(".jsonl"))
    assert 2 <= len(shards_at_kill) < 8, f"the run was not killed mid-way: {shards_at_kill}"
    assert not (killed_out / "summary.json").exists()

    resumed = subprocess.run(CLI + args + ["--out", str(killed_out)], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    whole = subprocess.run(
        CLI + args + ["--out", str(tmp_path / "whole")], capture_output=True, text=True, timeout=600
    )
    assert whole.returncode == 0, whole.stderr[-3000:]

    rows = _read_dir(killed_out)
    keys = [(r["id"], r["sample_index"]) for r in rows]
    assert len(keys) == len(set(keys)) == 16 * 2 * 2  # exactly the requested samples, no duplicates, no gaps
    assert rows == _read_dir(tmp_path / "whole")  # per-question seeds: resuming changes nothing
    assert not [n for n in os.listdir(killed_out) if ".tmp-" in n]


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda a, t: a.__setitem__(a.index("--model") + 1, str(t / "nowhere")),
            "not a model folder (no such folder)",
        ),
        (
            lambda a, t: a.__setitem__(a.index("--temperatures") + 1, "0.5,2.5"),
            "--temperatures: 2.5: must be a number in [0, 2]",
        ),
        (
            lambda a, t: a.__setitem__(a.index("--temperatures") + 1, "hot"),
            "--temperatures: expected comma-separated floats",
        ),
        (lambda a, t: a.__setitem__(a.index("--prompts") + 1, _bad_prompts(t)), "p_bad.jsonl:2: malformed JSON"),
        (
            lambda a, t: a.__setitem__(a.index("--prompts") + 1, _prompts(t / "p_task.jsonl", task="chess")),
            "field 'task': unknown task 'chess'",
        ),
    ],
)
def test_bad_input_is_a_one_line_error(tmp_path, tiny_model, change, message):
    args = [
        "--model",
        tiny_model,
        "--prompts",
        _prompts(tmp_path / "p.jsonl"),
        "--temperatures",
        "1.0",
        "--out",
        str(tmp_path / "out"),
        "--backend",
        "hf",
    ]
    change(args, tmp_path)
    result = subprocess.run(CLI + args, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in result.stderr


def _bad_prompts(tmp_path):
    path = tmp_path / "p_bad.jsonl"
    path.write_text('{"id": 1, "task": "arithmetic", "prompt": "q"}\n{"id": 2, "task": \n')
    return str(path)


@pytest.mark.slow
def test_judge_command_runs_on_a_real_backend_and_a_judge_that_never_scores_is_an_error(tmp_path, tiny_model):
    # A random tiny model never writes "Score: N": every judgement is retried once, then excluded; with nothing
    # judged at all the command fails naming the count and the reasons, and writes nothing a later stage would
    # read as labels.
    prompts = tmp_path / "open.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"o{i}", "task": "open", "prompt": f"Name a colour ({i})."}) + "\n" for i in range(2)
        )
    )
    samples = tmp_path / "student"
    generated = subprocess.run(
        [
            *CLI[:4],
            "--role",
            "student",
            "--no-progress",
            "--model",
            tiny_model,
            "--prompts",
            str(prompts),
            "--out",
            str(samples),
            "--temperatures",
            "1.0",
            "--n-per-temperature",
            "2",
            "--max-new-tokens",
            "8",
            "--backend",
            "hf",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert generated.returncode == 0, generated.stderr[-2000:]
    judged = subprocess.run(
        [
            sys.executable,
            "-m",
            "openrlhf_distill.cli",
            "judge",
            "--model",
            tiny_model,
            "--backend",
            "hf",
            "--prompts",
            str(prompts),
            "--student-samples",
            str(samples),
            "--out",
            str(tmp_path / "judged"),
            "--judge.max_new_tokens",
            "8",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert judged.returncode == 2, judged.stderr[-2000:]
    assert "none of the judge's 8 outputs ends in a score line that can be read" in judged.stderr
    assert "Traceback" not in judged.stderr and not (tmp_path / "judged").exists()


def test_progress_off_a_terminal_is_a_plain_line_now_and_then_with_rate_and_eta(capsys, monkeypatch):
    # In a log (the pipeline runs every stage with its output piped to stages/<key>.log) a redrawn bar would be
    # one endless line: a plain line instead, at most every LINE_SECONDS, and always the last one.
    from openrlhf_distill.generation import generate as sampling

    bar = sampling._Progress(total=100, done=20, label="teacher samples")  # 20 done before a resume
    for _ in range(4):
        bar.update(20, 300)
    bar.close()
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1, lines  # 30 s between lines: only the end
    assert lines[0].startswith("teacher samples: 100/100 (100%), ") and lines[0].endswith("ETA 00:00:00")
    assert "samples/s" in lines[0] and "tokens/s" in lines[0]
    monkeypatch.setattr(sampling._Progress, "LINE_SECONDS", 0.0)
    bar = sampling._Progress(total=100, done=0, label="student samples")
    bar.update(25, 100)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0].startswith("student samples: 25/100 (25%), ") and "ETA 00:00:" in lines[0]
