"""The vllm backend on vLLM's CPU build: one engine, started once, answers every check of this file.

The engine runs in a script of its own (vLLM spawns engine processes, which re-import ``__main__``); the script
prints what the backend returned and the tests below judge it. The split/merge of requests across data-parallel
engines is checked as a pure function; the Ray path that starts several engines needs GPUs and is untested here.
"""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from openrlhf_distill.generation.backend import BackendError
from openrlhf_distill.generation.vllm_backend import VLLMBackend, merge_from_engines, split_across_engines

CHAT = [{"role": "user", "content": "what is 12 + 7?"}]
TEXT = "the total of 3 apples and 5 apples is"

ENGINE_SCRIPT = textwrap.dedent(
    """
    import collections, json, sys
    from openrlhf_distill.generation.backend import BackendError, Request
    from openrlhf_distill.generation.vllm_backend import VLLMBackend

    def dump(results):
        return [[[c.text, c.finish_reason, c.num_tokens] for c in completions] for completions in results]

    def main():
        model, chat, text = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
        out = {}
        try:
            VLLMBackend(model, data_parallel_size=2)
        except BackendError as e:
            out["data_parallel_on_cpu"] = str(e)
        backend = VLLMBackend(model, dtype="float32", max_model_len=256)
        out["info"] = {"name": backend.info.name, "reproducible": backend.info.reproducible, **backend.info.extra}
        sampled_text = Request(text, 1.0, 3, 8, seed=11)
        sampled_chat = Request(chat, 0.8, 2, 8, seed=12)
        mixed = [sampled_text, sampled_chat, Request(chat, 0.0, 2, 8, seed=0), Request(text, 0.0, 1, 8, seed=0)]
        out["mixed"] = dump(backend.generate(mixed))
        # The same requests again, alone and in another order: per-request seeds ignore the batch around them.
        out["alone"] = dump(backend.generate([sampled_chat]) + backend.generate([sampled_text]))
        out["other_seed"] = dump(backend.generate([Request(text, 1.0, 3, 8, seed=99)]))
        # Stop strings: sample freely, pick the commonest printable ASCII character, then sample again with the
        # same seed and that character as a stop string.
        free = backend.generate([Request(text, 1.0, 4, 24, seed=21)])[0]
        chars = [ch for ch in "".join(c.text for c in free) if ch.isascii() and ch.isprintable()]
        stop = collections.Counter(chars).most_common(1)[0][0]
        out["stop"] = stop
        out["free"] = dump([free])[0]
        stopped = backend.generate([Request(text, 1.0, 4, 24, seed=21, stop=(stop,))])[0]
        out["stopped"] = dump([stopped])[0]
        out["short"] = dump(backend.generate([Request(text, 1.0, 2, 3, seed=5), Request(chat, 0.0, 1, 3, seed=5)]))
        out["empty"] = backend.generate([])
        # More seeded prompt tokens than one engine step takes (~11000 > 2048): with chunked prefill, vLLM 0.32's
        # CPU engine dies here ("CPU Generator does not use offset"); the backend turns it off on CPU.
        many = [Request(f"{text} {i} " * 3, 1.0, 4, 2, seed=i) for i in range(64)]
        out["many"] = [len(completions) for completions in backend.generate(many)]
        try:
            backend.generate([Request(text, 1.0, 1, 4, seed=1), Request(text * 40, 1.0, 1, 4, seed=1)])
        except BackendError as e:
            out["too_long"] = str(e)
        out["after_too_long"] = dump(backend.generate([sampled_text]))
        backend.close()
        print("RESULT", json.dumps(out))

    if __name__ == "__main__":
        main()
    """
)


@pytest.fixture(scope="module")
def engine_results(tiny_model, tmp_path_factory):
    script = tmp_path_factory.mktemp("vllm_backend") / "engine.py"
    script.write_text(ENGINE_SCRIPT)
    cmd = [sys.executable, str(script), tiny_model, json.dumps(CHAT), TEXT]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("RESULT "))
    return json.loads(line[len("RESULT ") :])


@pytest.mark.slow
def test_string_and_chat_prompts_in_one_batch_each_get_their_n_completions(engine_results):
    mixed = engine_results["mixed"]
    assert [len(completions) for completions in mixed] == [3, 2, 2, 1]
    for completions in mixed:
        for text, finish, tokens in completions:
            assert isinstance(text, str) and finish in ("stop", "length") and 1 <= tokens <= 8
    assert len({c[0] for c in mixed[0]}) > 1, "temperature 1.0 gave three identical samples"
    assert mixed[2][0] == mixed[2][1], "greedy samples of one prompt differ"
    assert engine_results["empty"] == []


@pytest.mark.slow
def test_greedy_completions_equal_transformers_greedy_for_the_chat_formatted_and_the_plain_prompt(
    engine_results, tiny_model
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    chat_text = tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True)
    for prompt, completions in [(chat_text, engine_results["mixed"][2]), (TEXT, engine_results["mixed"][3])]:
        ids = tok(prompt, return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            ref = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        expected = tok.decode(ref[0, ids.input_ids.shape[1] :], skip_special_tokens=True)
        assert completions[0][0] == expected


@pytest.mark.slow
def test_the_same_seed_gives_the_same_samples_alone_or_in_another_batch_and_another_seed_does_not(engine_results):
    mixed, alone = engine_results["mixed"], engine_results["alone"]
    assert alone[0] == mixed[1] and alone[1] == mixed[0]
    assert engine_results["other_seed"][0] != mixed[0]
    assert "seed" in engine_results["info"]["reproducible"]


@pytest.mark.slow
def test_stop_strings_end_completions_where_the_unstopped_sample_first_contains_them(engine_results):
    stop, free, stopped = engine_results["stop"], engine_results["free"], engine_results["stopped"]
    assert not any(stop in text for text, _, _ in stopped)
    assert any(finish == "stop" for _, finish, _ in stopped)
    for (free_text, _, _), (text, finish, _) in zip(free, stopped, strict=True):
        if stop in free_text:  # same seed: the same tokens until the stop string appears
            assert text == free_text[: free_text.index(stop)] and finish == "stop"
        else:
            assert text == free_text


@pytest.mark.slow
def test_completions_that_reach_max_new_tokens_finish_with_length(engine_results):
    completions = [c for request in engine_results["short"] for c in request]
    assert any(finish == "length" for _, finish, _ in completions)
    for _, finish, tokens in completions:
        assert (finish == "length") == (tokens == 3)


@pytest.mark.slow
def test_a_seeded_batch_larger_than_one_engine_step_completes_on_cpu(engine_results):
    assert engine_results["many"] == [4] * 64


@pytest.mark.slow
def test_a_prompt_longer_than_max_model_len_is_a_backend_error_and_the_engine_keeps_working(engine_results):
    assert engine_results["too_long"].startswith("vllm backend: ") and "256" in engine_results["too_long"]
    assert engine_results["after_too_long"] == engine_results["mixed"][:1]


@pytest.mark.slow
def test_several_engines_on_a_machine_without_gpus_is_refused_with_a_clear_message(engine_results):
    assert "needs GPUs" in engine_results["data_parallel_on_cpu"]


@pytest.mark.slow
def test_the_backend_on_cpu_reports_eager_cpu_settings(engine_results):
    info = engine_results["info"]
    assert info["name"] == "vllm" and info["device"] == "cpu" and info["data_parallel_size"] == 1


# The Ray path (several engines, each tensor_parallel_size GPUs) is untested here: no GPUs. Its split and merge
# are pure functions, checked below.
def test_requests_split_across_engines_come_back_in_request_order():
    weights = [1, 8, 1, 1, 4, 1, 1]  # uneven work: one big request, one medium
    for engines in (1, 2, 3, 5, 10):
        parts = split_across_engines(weights, engines)
        assert len(parts) == engines
        assert sorted(i for part in parts for i in part) == list(range(len(weights)))
        assert all(part == sorted(part) for part in parts)
        answers = [[f"answer {i}" for i in part] for part in parts]  # what each engine would return
        assert merge_from_engines(parts, answers, len(weights)) == [f"answer {i}" for i in range(len(weights))]


def test_the_split_balances_uneven_work_and_leaves_extra_engines_empty():
    parts = split_across_engines([8, 1, 1, 1, 1, 1, 1, 1, 1], 2)
    loads = [sum([8, 1, 1, 1, 1, 1, 1, 1, 1][i] for i in part) for part in parts]
    assert loads == [8, 8]
    assert split_across_engines([3, 3], 4) == [[0], [1], [], []]
    assert split_across_engines([], 3) == [[], [], []]


def test_merging_refuses_an_engine_that_answered_too_few_requests():
    with pytest.raises(BackendError, match="answered 1 of 2"):
        merge_from_engines([[0, 1], [2]], [["a"], ["c"]], 3)


def test_a_missing_model_folder_is_a_one_line_error_before_vllm_starts(tmp_path):
    start = time.monotonic()
    for missing in [str(tmp_path / "nothing"), "./student_sft", f"{tmp_path}/runs/student"]:
        with pytest.raises(BackendError, match="does not exist") as error:
            VLLMBackend(missing)
        assert "\n" not in str(error.value)
    with pytest.raises(BackendError, match="no config.json"):
        VLLMBackend(str(tmp_path))
    assert time.monotonic() - start < 5


def test_vllm_that_cannot_be_imported_is_a_clear_error(tmp_path, monkeypatch):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setitem(sys.modules, "vllm", None)  # what Python does for a package that is not installed
    with pytest.raises(BackendError, match="vLLM is not importable.*--backend hf"):
        VLLMBackend(str(tmp_path))
