"""The batching reward-model server: under load from many threads, with bad requests, with a failing batch, in
OpenRLHF's remote-RM form, behind the hybrid reward function, and as the `serve-rm` command."""

import asyncio
import http.client
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from openrlhf_distill import cli
from openrlhf_distill.compat.formats import reward_model_input
from openrlhf_distill.records import encode_reward_label
from openrlhf_distill.rewards import RewardConfig, RewardModelServer, RewardServerError, make_reward_func, score

EOS = "<|im_end|>"
# Measured on the 2-core CPU machine: the tiny RM's normalised rewards were bit-identical whether a text was
# scored alone or in any of 25 random batch compositions of 2, 7, 23, 48 and 64 texts (2,400 texts each time:
# left padding and position ids leave each row's computation unchanged there). The tolerance is far below one
# bf16 step of those rewards (>= 0.004), so a reward returned for the wrong request is caught unless the two
# texts happen to share a reward; the stand-in scorer test below catches every mix-up.
TOLERANCE = 1e-3


def _chat_prompt(question: str) -> str:
    return f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"


def _distinct_items(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """n (prompt, response) pairs, all different, of varied lengths (so batches need padding)."""
    rng, items = random.Random(seed), []
    for i in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        steps = f"{a} + {b} = {a + b}. " * rng.randint(0, 3)
        items.append((_chat_prompt(f"question {i}: what is {a} + {b}?"), f"{steps}#### {a + b}{EOS}"))
    return items


def _post(url: str, body, path="/score", headers=None, method="POST"):
    """(status, JSON answer) of one raw request; ``body`` bytes are sent as they are."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    connection.putrequest(method, path)
    for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
        connection.putheader(name, value)
    if data is not None and "Content-Length" not in (headers or {}):
        connection.putheader("Content-Length", str(len(data)))
    connection.endheaders()
    if data:
        try:
            connection.send(data)
        except (BrokenPipeError, ConnectionResetError):  # the server answered before reading: 413
            pass
    response = connection.getresponse()
    answer = json.loads(response.read() or b"null")
    connection.close()
    return response.status, answer


# --- with the real (tiny) reward model -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_rm(tiny_model, tmp_path_factory):
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    return build_tiny_reward_model(str(tmp_path_factory.mktemp("tiny_rm")), base_dir=tiny_model)


class DirectScoring:
    """The same RM scored directly, without the server: the reference for every reward the server returns.
    (Batches of 64 here give bit-identical rewards to one text at a time: see TOLERANCE.)"""

    def __init__(self, model_dir):
        from openrlhf_distill.reward_model.scorer import RewardScorer

        self.scorer = RewardScorer(model_dir, batch_size=64, normalize=True)

    def many(self, pairs) -> list[float]:
        return self.scorer.scores([reward_model_input(p + r, self.scorer.eos_token) for p, r in pairs])

    def __call__(self, prompt, response) -> float:
        return self.many([(prompt, response)])[0]


@pytest.fixture(scope="module")
def direct(tiny_rm):
    return DirectScoring(tiny_rm)


@pytest.fixture(scope="module")
def rm_server(tiny_rm):
    with RewardModelServer(tiny_rm, max_batch_size=64, max_wait_ms=5) as server:
        yield server


@pytest.mark.slow
def test_thousands_of_concurrent_requests_each_get_their_own_reward_once(rm_server, direct):
    items = _distinct_items(2400)
    expected = direct.many(items)
    before = rm_server.stats()

    def request(index):
        prompt, response = items[index]
        return index, score(rm_server.url, [prompt], [response], timeout=60)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=48) as pool:
        answers = list(pool.map(request, range(len(items))))
    seconds = time.perf_counter() - start
    stats = rm_server.stats()
    histogram = {
        size: count - before["batch_size_histogram"].get(size, 0)
        for size, count in stats["batch_size_histogram"].items()
        if count > before["batch_size_histogram"].get(size, 0)
    }
    print(
        f"\n{len(items)} requests from 48 threads in {seconds:.1f} s ({len(items) / seconds:.0f}/s); "
        f"batch sizes {histogram}"
    )

    assert sorted(index for index, _ in answers) == list(range(len(items)))  # every request answered, once
    wrong = [(i, got[0], expected[i]) for i, got in answers if len(got) != 1 or abs(got[0] - expected[i]) > TOLERANCE]
    assert not wrong, wrong[:5]
    assert stats["requests"] - before["requests"] == len(items)
    assert stats["samples"] - before["samples"] == len(items)
    assert sum(size * count for size, count in histogram.items()) == len(items)
    assert max(histogram) > 1 and stats["batches"] - before["batches"] < len(items) / 4  # batches were formed
    assert stats["errors"] == before["errors"]


def test_hybrid_reward_against_a_live_server_is_alpha_rm_plus_beta_vote(rm_server, direct):
    config = RewardConfig("hybrid", task="gsm8k", alpha=0.5, beta=2.0, rm_url=rm_server.url)
    func = make_reward_func(config)
    prompt = _chat_prompt("A pen costs 3 dollars. How much do 6 pens cost?")
    label = encode_reward_label(id="q1", task="gsm8k", label="18", gold="18")
    for response, vote in (("#### 18<|im_end|>", 1.0), ("3 * 6 = 18. #### 18", 1.0), ("#### 17", 0.0), ("no", 0.0)):
        out = func([prompt + response], [prompt], [label])
        rm = direct(prompt, response)
        assert out["extra_logs"]["distill/rm_reward"].item() == pytest.approx(rm, abs=TOLERANCE)
        assert out["rewards"].item() == pytest.approx(0.5 * rm + 2.0 * vote, abs=TOLERANCE)
        assert out["scores"].item() == vote


def test_openrlhfs_remote_rm_form_scores_the_query_as_given(rm_server, direct):
    items = _distinct_items(3, seed=1)
    queries = [p + r for p, r in items]
    status, answer = _post(rm_server.url, {"query": queries, "prompts": [p for p, _ in items], "labels": ["", "", ""]})
    assert status == 200 and answer["rewards"] == answer["scores"]
    assert answer["rewards"] == pytest.approx([direct(q, "") for q in queries], abs=TOLERANCE)


class _ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine with a fixed response (the test is about the reward path)."""

    def __init__(self, token_ids):
        self.token_ids = token_ids

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        output = SimpleNamespace(token_ids=list(self.token_ids), text="", finish_reason="stop", logprobs=None)
        return SimpleNamespace(outputs=[output])


def test_the_server_works_directly_as_openrlhfs_remote_url(rm_server, direct, tiny_model):
    from openrlhf_distill.compat import boot_install

    boot_install()
    from openrlhf.utils.agent import SingleTurnAgentExecutor
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model)
    prompt = _chat_prompt("what is 2 + 3?")
    engine = _ScriptedEngine(tokenizer("#### 5", add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id])
    executor = SingleTurnAgentExecutor(remote_rm_url=f"{rm_server.url}/score")
    params = SimpleNamespace(max_tokens=32, logprobs=None)
    output = asyncio.run(executor.execute(prompt, "", params, 128, tokenizer, engine))
    assert output["reward"] == pytest.approx([direct(prompt, "#### 5" + EOS)], abs=TOLERANCE)


# --- with stand-in scorers (no model: exact values, failures on demand) ---------------------------------------
class DigestScorer:
    """Reward = a number computed from the whole text, exactly: any mix-up between requests shows."""

    eos_token = EOS

    def __init__(self, fail_on: str | None = None, delay_s: float = 0.0):
        self.fail_on, self.delay_s = fail_on, delay_s

    @staticmethod
    def value(text: str) -> float:
        return float(sum((i + 1) * ord(c) for i, c in enumerate(text)) % 100003)

    def scores(self, texts):
        if self.fail_on and any(self.fail_on in t for t in texts):
            raise RuntimeError("boom")
        time.sleep(self.delay_s)  # a forward pass takes time: requests pile up and batches form
        return [self.value(t) for t in texts]


def test_every_request_gets_exactly_its_own_rewards_with_multi_sample_requests():
    items = _distinct_items(2000, seed=2)
    rng = random.Random(3)
    requests, start = [], 0
    while start < len(items):  # requests of 1 to 5 samples: some span two batches of 8
        size = rng.randint(1, 5)
        requests.append(items[start : start + size])
        start += size
    with RewardModelServer(None, scorer=DigestScorer(delay_s=0.001), max_batch_size=8, max_wait_ms=2) as server:

        def request(pairs):
            return score(server.url, [p for p, _ in pairs], [r for _, r in pairs], timeout=60)

        with ThreadPoolExecutor(max_workers=32) as pool:
            answers = list(pool.map(request, requests))
        stats = server.stats()
    for pairs, rewards in zip(requests, answers, strict=True):
        assert rewards == [DigestScorer.value(reward_model_input(p + r, EOS)) for p, r in pairs]
    assert stats["requests"] == len(requests) and stats["samples"] == len(items) and stats["errors"] == 0
    assert max(stats["batch_size_histogram"]) == 8


@pytest.fixture
def digest_server():
    with RewardModelServer(None, scorer=DigestScorer(fail_on="BOOM"), max_wait_ms=1, max_body_bytes=4096) as server:
        yield server


@pytest.mark.parametrize(
    "request_kwargs, status, message",
    [
        ({"body": b"{not json"}, 400, "body is not valid JSON"),
        ({"body": b"\xff\xfe"}, 400, "body is not valid JSON"),
        ({"body": ["a"]}, 400, "the body must be a JSON object"),
        ({"body": {}}, 400, "missing field 'query' .* or 'prompt' and 'response'"),
        ({"body": {"query": []}}, 400, "field 'query' must be a non-empty list of strings, got an empty list"),
        ({"body": {"query": "text"}}, 400, "field 'query' must be a non-empty list of strings, got str"),
        ({"body": {"query": ["a", 3]}}, 400, "field 'query' must be a non-empty list of strings"),
        ({"body": {"prompt": "p"}}, 400, "missing field 'response'"),
        ({"body": {"prompt": "p", "response": 5}}, 400, "field 'response' must be a string or a non-empty list"),
        ({"body": {"prompt": ["p", "q"], "response": ["r"]}}, 400, "same length .*2 prompt.*1 response"),
        ({"body": {"prompt": "p", "response": ["r"]}}, 400, "must both be strings or lists"),
        ({"body": b'{"query": ["' + b"x" * 5000 + b'"]}'}, 413, "over the limit of 4096 bytes"),
        ({"body": b"{}", "headers": {"Content-Length": "10000000"}}, 413, "10000000 bytes is over the limit"),
        ({"body": None, "headers": {"Content-Length": "ten"}}, 400, "'Content-Length' must be a byte count"),
        ({"body": {"query": ["a"]}, "path": "/get_reward"}, 404, "no such path '/get_reward'"),
        ({"body": None, "path": "/nowhere", "method": "GET"}, 404, "POST /score, GET /health, GET /stats"),
        ({"body": None, "method": "GET"}, 405, "POST to /score"),
    ],
)
def test_bad_requests_get_4xx_naming_the_problem_and_the_server_keeps_serving(
    digest_server, request_kwargs, status, message
):
    got_status, answer = _post(digest_server.url, **request_kwargs)
    assert got_status == status
    assert re.search(message, answer["error"]), answer
    assert score(digest_server.url, ["p"], ["r"]) == [DigestScorer.value(reward_model_input("pr", EOS))]
    assert digest_server.stats()["errors"] == 1


def test_a_failing_batch_fails_only_its_requests(digest_server):
    assert _post(digest_server.url, {"prompt": "a", "response": "b"})[0] == 200
    status, answer = _post(digest_server.url, {"prompt": "a", "response": "BOOM"})
    assert status == 500 and answer["error"] == "scoring failed: RuntimeError: boom"
    with pytest.raises(RewardServerError, match="answered 500: scoring failed: RuntimeError: boom"):
        score(digest_server.url, ["x"], ["BOOM"])
    assert _post(digest_server.url, {"prompt": ["a", "c"], "response": ["b", "d"]})[0] == 200
    assert _post(digest_server.url, None, path="/health", method="GET") == (
        200,
        {"status": "ok", "model": None, "max_batch_size": 64, "max_request_samples": 4096},
    )
    stats = _post(digest_server.url, None, path="/stats", method="GET")[1]
    assert stats["requests"] == 4 and stats["samples"] == 3 and stats["errors"] == 2


class BatchLog(DigestScorer):
    """The digest scorer, recording each batch's texts in the order the worker scored them."""

    def __init__(self, delay_s):
        super().__init__(delay_s=delay_s)
        self.batches = []

    def scores(self, texts):
        self.batches.append(list(texts))
        return super().scores(texts)


def test_stats_count_requests_by_the_client_that_sent_them(digest_server, monkeypatch):
    from openrlhf_distill.rewards.server import CLIENT_HEADER, client_name

    assert client_name() == f"host:{socket.gethostname()}"  # no Ray in this process
    for _ in range(2):
        score(digest_server.url, ["p"], ["r"])
    assert _post(digest_server.url, {"prompt": "a", "response": "b"})[0] == 200  # no header: the address counts
    assert _post(digest_server.url, {"prompt": "a", "response": "b"}, headers={CLIENT_HEADER: "ray-node:n2"})[0] == 200
    # Inside a Ray worker our client names the Ray node (a stand-in for Ray's runtime context here; the real one
    # is in tests/test_ray_cluster.py, where rollout actors on two nodes call one server).
    context = SimpleNamespace(get_node_id=lambda: "n1")
    fake_ray = SimpleNamespace(is_initialized=lambda: True, get_runtime_context=lambda: context)
    monkeypatch.setitem(sys.modules, "ray", fake_ray)
    score(digest_server.url, ["p"], ["r"])
    assert digest_server.stats()["requests_by_client"] == {
        "127.0.0.1": 1,
        f"host:{socket.gethostname()}": 2,
        "ray-node:n1": 1,
        "ray-node:n2": 1,
    }


def test_a_small_request_behind_a_large_one_is_in_the_next_batch_not_behind_it():
    # One client sends 3,000 samples at once; another, a moment later, one. Batches take one sample of each
    # waiting request in turn, so the one-sample request rides in the next batch formed after it arrives; in
    # arrival order it would wait for all 3,000 (188 batches of 16; measured before this change: a request of
    # 20,000 samples held a one-sample request for 164 s on the real RM).
    scorer = BatchLog(delay_s=0.01)
    big = [(f"big {i}", "r") for i in range(3000)]
    with RewardModelServer(None, scorer=scorer, max_batch_size=16, max_wait_ms=1) as server:
        with ThreadPoolExecutor(max_workers=2) as pool:
            large = pool.submit(score, server.url, [p for p, _ in big], [r for _, r in big], 120)
            while len(scorer.batches) < 3:  # the large request is being scored
                time.sleep(0.005)
            arrived = len(scorer.batches)
            started = time.monotonic()
            assert score(server.url, ["small"], ["r"]) == [DigestScorer.value(reward_model_input("smallr", EOS))]
            small_latency = time.monotonic() - started
            scored_before = len(scorer.batches)
            assert len(large.result()) == 3000
    where = next(i for i, batch in enumerate(scorer.batches) if any(t.startswith("small") for t in batch))
    assert where <= arrived + 1, (where, arrived)  # the batch in flight when it came, then its own
    assert scored_before < 20 and small_latency < 2.0, (scored_before, small_latency)  # of 188 batches
    assert all(len(batch) <= 16 for batch in scorer.batches) and sum(map(len, scorer.batches)) == 3001


def test_a_request_over_the_sample_limit_gets_413_and_the_server_keeps_serving():
    with RewardModelServer(None, scorer=DigestScorer(), max_request_samples=100) as server:
        status, answer = _post(server.url, {"query": ["q"] * 101})
        assert status == 413 and answer["error"].startswith("101 samples in one request, over the limit of 100")
        with pytest.raises(RewardServerError, match="answered 413"):
            score(server.url, ["p"] * 101, ["r"] * 101)
        assert len(score(server.url, ["p"] * 100, ["r"] * 100)) == 100
    with pytest.raises(ValueError, match="max_request_samples must be >= 1"):
        RewardModelServer(None, scorer=DigestScorer(), max_request_samples=0)


@pytest.mark.slow
def test_a_text_longer_than_the_rm_is_cut_as_openrlhf_cuts_it_and_counted(direct):
    import torch

    scorer = direct.scorer
    short = reward_model_input(_chat_prompt("what is 1 + 1?") + "#### 2", scorer.eos_token)
    long_text = reward_model_input(_chat_prompt("what is 1 + 1?") + "#### 2" + " 7" * 2000, scorer.eos_token)
    assert len(scorer.tokenizer(long_text, add_special_tokens=False)["input_ids"]) > scorer.max_len
    before = scorer.truncated
    long_score, short_score = scorer.scores([long_text, short])
    assert scorer.truncated == before + 1  # the short one is not counted
    # OpenRLHF's RewardDataset: the first max_len tokens, the last one made EOS (where the score is read)
    cut = scorer.tokenizer(long_text, add_special_tokens=False)["input_ids"][: scorer.max_len - 1]
    cut.append(scorer.tokenizer.eos_token_id)
    with torch.no_grad():
        expected = scorer.model(torch.tensor([cut]), attention_mask=torch.ones(1, len(cut), dtype=torch.long))
    assert long_score == pytest.approx(expected.float().item(), abs=TOLERANCE)
    assert short_score == pytest.approx(scorer.scores([short])[0], abs=TOLERANCE)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_client_retries_while_the_server_starts_and_says_where_it_looked_when_none_does():
    port = _free_port()
    server = RewardModelServer(None, port=port, scorer=DigestScorer())
    starter = threading.Timer(0.6, server.start)  # the first tries are refused, a retry gets through
    starter.start()
    try:
        assert score(f"http://127.0.0.1:{port}", ["p"], ["r"], timeout=30) == [
            DigestScorer.value(reward_model_input("pr", EOS))
        ]
    finally:
        starter.join()
        server.stop()
    with pytest.raises(RewardServerError, match=rf"127.0.0.1:{port}/score \(2 tries.*serve-rm --model"):
        score(f"http://127.0.0.1:{port}/score", ["p"], ["r"], retries=1)


def test_server_settings_are_checked():
    with pytest.raises(ValueError, match="max_batch_size must be >= 1"):
        RewardModelServer("rm", max_batch_size=0)
    with pytest.raises(ValueError, match="model_dir"):
        RewardModelServer(None)
    with pytest.raises(RuntimeError, match="call start"):
        RewardModelServer(None, scorer=DigestScorer()).url  # noqa: B018


# --- the command ------------------------------------------------------------------------------------------------
SERVE = """
import sys
from openrlhf_distill.cli import main
sys.exit(main(["serve-rm", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_serve_rm_prints_its_url_serves_and_stops_on_ctrl_c(tiny_rm):
    parser = cli.command_parser("serve-rm")
    args = parser.parse_args(["--model", tiny_rm])
    assert (args.host, args.port, args.max_batch_size, args.max_wait_ms) == ("127.0.0.1", 8000, 64, 5.0)

    # Ctrl-C reaches a foreground process whose SIGINT is at its default. A test run started in the background
    # without job control (`cmd &` in a script) inherits SIGINT ignored, and Python then installs no handler: the
    # server would never see the signal (the stop that "never ended" with nothing in stderr). Reset it.
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "--model", tiny_rm, "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        url = None
        for line in process.stdout:
            if line.startswith("reward-model server at "):
                url = line.split()[3]
                break
        assert url, process.stderr.read()[-3000:]
        assert _post(url, None, path="/health", method="GET")[0] == 200
        assert len(score(url, ["p"], ["r"])) == 1
        process.send_signal(signal.SIGINT)
        # stop() may wait up to 30 s for each of its two threads; 60 s here once raced that bound on a slow CI run.
        # Past 75 s the server writes every thread's stack to stderr, shown here if it never ends.
        try:
            out, _ = process.communicate(timeout=150)
        except subprocess.TimeoutExpired as timeout:
            process.kill()
            err = timeout.stderr or b""
            err = err.decode(errors="replace") if isinstance(err, bytes) else err
            pytest.fail(f"serve-rm did not stop within 150 s of Ctrl-C; its stderr ends:\n{err[-6000:]}")
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0
    assert '"requests": 1' in out and '"samples": 1' in out


def test_a_text_longer_than_the_rm_reads_is_cut_before_tokenising_to_the_same_ids(tiny_rm):
    """A huge text is not tokenised whole (it held the server for 49 s): its prefix gives the same ids as the
    whole text cut to the RM's positions; a prefix of unusually long tokens falls back to the whole text."""
    import random

    from openrlhf_distill.reward_model import scorer

    rm = scorer.RewardScorer(tiny_rm)
    words = "the quick brown fox jumps over the lazy dog 12 345".split()
    prose = " ".join(random.Random(0).choice(words) for _ in range(200_000))  # about 1 MB
    dense = "x" * (rm.max_len * scorer.CHARS_PER_TOKEN * 3)  # runs of x: a few long tokens
    for text in (prose, dense, "short text"):
        whole = rm.tokenizer([text], add_special_tokens=False)["input_ids"][0]
        assert rm._cut(rm._token_ids([text])[0]) == rm._cut(whole)
    seen, tokenize = [], rm.tokenizer.__call__

    class Recording:  # the tokenizer, recording the length of every text it is given
        def __call__(self, texts, **options):
            seen.extend(len(t) for t in ([texts] if isinstance(texts, str) else texts))
            return tokenize(texts, **options)

    rm.tokenizer = type("Tokenizer", (Recording,), {"__getattr__": lambda self, n: getattr(tokenize.__self__, n)})()
    rm._token_ids([prose * 15])  # 15 MB: only its prefix is tokenised
    assert seen == [rm.max_len * scorer.CHARS_PER_TOKEN]


def test_serve_rm_on_a_busy_port_is_refused_before_the_model_loads(tiny_rm, monkeypatch, capsys):
    from openrlhf_distill import cli
    from openrlhf_distill.reward_model import scorer

    def never(*args, **kwargs):
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(scorer.RewardScorer, "__init__", never)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert cli.main(["serve-rm", "--model", tiny_rm, "--port", str(port)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"--port {port}: cannot listen there" in err
