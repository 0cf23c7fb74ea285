"""A batching HTTP server for the distilled reward model, and its client.

OpenRLHF calls a reward function once per sample, from many threads of many rollout actors at once; scoring
each call alone would run the RM on batches of one. The server queues the samples of concurrent requests and
one worker thread scores them in batches of up to ``max_batch_size``, waiting at most ``max_wait_ms`` after the
first queued sample for others to join it. Every request is answered exactly once: with its rewards, or with
an error that names the problem (a failed batch fails only the requests in that batch).

Fair to small requests: a batch takes one sample from each waiting request in turn (round robin), so a request
of a few samples that arrives behind one of thousands is in the next batch, not behind all of them; a request
over ``max_request_samples`` is refused with 413. Texts longer than the RM's positions are cut as OpenRLHF's
RewardDataset cuts them (right end dropped, EOS kept last) and counted in ``/stats`` as ``truncated``.

Endpoints:

- ``POST /score`` with OpenRLHF's remote-RM body ``{"query": [str], "prompts": [...], "labels": [...]}`` (so the
  server also works as ``--reward.remote_url http://HOST:PORT/score``), or ours,
  ``{"prompt": str | [str], "response": str | [str]}``. Answer: ``{"rewards": [float], "scores": [float]}``.
- ``GET /health``: ``{"status": "ok", "model": ...}``; ``GET /stats``: see :meth:`RewardModelServer.stats`.

Our client names itself in the ``X-Distill-Client`` header (the Ray node a rollout actor runs on, else the
host), and ``/stats`` counts requests by client: on a multi-node run it shows which nodes reach the server.

Texts are built here, like the RM's training texts: ``reward_model_input(prompt + response, eos)`` with the
EOS token of the RM's own tokenizer (OpenRLHF's RewardDataset scored ``text.rstrip("\\n") + " " + eos``), so a
client needs to know nothing about the RM. Rewards are normalised with the RM's stored ``mean``/``std``.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, deque
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..argtypes import int_at_least, int_in, number_in
from ..compat.formats import reward_model_input
from ..contract import Input
from ..settings import from_args, setting

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_REQUEST_SAMPLES = 4096
CLIENT_HEADER = "X-Distill-Client"


class BadRequest(Exception):
    """A request the server refuses: ``status`` (4xx) and a message naming the field."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class RewardServerError(RuntimeError):
    """The client could not get rewards: the server was unreachable, or answered with an error."""


def _strings(body: dict, name: str, allow_single: bool) -> list[str]:
    value = body.get(name)
    if allow_single and isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        expected = "a string or a non-empty list of strings" if allow_single else "a non-empty list of strings"
        got = "an empty list" if value == [] else type(value).__name__
        raise BadRequest(400, f"field '{name}' must be {expected}, got {got}")
    return value


def texts_to_score(body, eos_token: str) -> list[str]:
    """The RM input texts of a /score request body, in order; BadRequest naming the field when malformed."""
    if not isinstance(body, dict):
        raise BadRequest(
            400,
            'the body must be a JSON object: {"query": [str]} (OpenRLHF\'s remote-RM form) or '
            '{"prompt": str | [str], "response": str | [str]}',
        )
    if "query" in body:  # OpenRLHF: prompt + response as its tokenizer decoded them; "prompts"/"labels" unused
        return [reward_model_input(query, eos_token) for query in _strings(body, "query", allow_single=False)]
    if "prompt" not in body and "response" not in body:
        raise BadRequest(
            400, f"missing field 'query' (OpenRLHF's form) or 'prompt' and 'response'; got fields {sorted(body)}"
        )
    for name in ("prompt", "response"):
        if name not in body:
            raise BadRequest(400, f"missing field '{name}' (the prompt/response form needs both)")
    prompts = _strings(body, "prompt", allow_single=True)
    responses = _strings(body, "response", allow_single=True)
    if isinstance(body["prompt"], str) != isinstance(body["response"], str) or len(prompts) != len(responses):
        raise BadRequest(
            400,
            f"fields 'prompt' and 'response' must both be strings or lists of the same length "
            f"(got {len(prompts)} prompt(s), {len(responses)} response(s))",
        )
    return [reward_model_input(p + r, eos_token) for p, r in zip(prompts, responses, strict=True)]


class _Job:
    """The samples of one request: filled in by the batching worker, finished exactly once."""

    def __init__(self, texts: list[str]):
        self.texts = texts
        self.next_index = 0  # the next sample to put in a batch
        self.rewards: list[float | None] = [None] * len(texts)
        self.remaining = len(texts)
        self.error: str | None = None
        self.done = threading.Event()

    def set_reward(self, index: int, reward: float) -> None:
        if self.done.is_set():  # an earlier batch of this request failed: it has been answered already
            return
        self.rewards[index] = reward
        self.remaining -= 1
        if self.remaining == 0:
            self.done.set()

    def fail(self, message: str) -> None:
        if not self.done.is_set():
            self.error = message
            self.done.set()


@dataclass(frozen=True)
class ServerSettings:
    """How an RM server listens and batches: `serve-rm`'s flags, and `ppo`'s ``--distill.rm_server.*`` for the
    server a hybrid run starts (there with the address chosen by the run and a free port by default)."""

    host: str | None = setting("127.0.0.1", "address to listen on (0.0.0.0: every interface)")
    port: int = setting(8000, "port (0: any free port)", check=int_in(0, 65535))
    max_batch_size: int = setting(
        64, "most samples scored in one forward pass", check=int_at_least(1), aliases=("--max-batch-size",)
    )
    max_wait_ms: float = setting(
        5.0,
        "how long a first queued sample waits for others to fill its batch",
        check=number_in(0),
        aliases=("--max-wait-ms",),
    )
    max_request_samples: int = setting(
        MAX_REQUEST_SAMPLES,
        "most samples in one request (more: 413); no client holds the others up",
        check=int_at_least(1),
        aliases=("--max-request-samples",),
    )
    device: str | None = setting(None, "where the RM scores (cpu, cuda, cuda:N; default: a GPU if there is one)")


class RewardModelServer:
    """Serves an OpenRLHF reward model over HTTP, batching concurrent requests (see the module docstring).

    ``scorer``: anything with ``scores(texts) -> list[float]`` and ``eos_token``; by default the RM in
    ``model_dir`` is loaded on :meth:`start` by :class:`~openrlhf_distill.reward_model.scorer.RewardScorer`
    with normalised rewards. Tests pass their own.
    """

    def __init__(
        self,
        model_dir: str | None,
        host: str = "127.0.0.1",
        port: int = 0,
        max_batch_size: int = 64,
        max_wait_ms: float = 5.0,
        *,
        scorer=None,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_request_samples: int = MAX_REQUEST_SAMPLES,
        request_timeout_s: float = 600.0,
        device: str | None = None,
    ):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_request_samples < 1:
            raise ValueError(f"max_request_samples must be >= 1, got {max_request_samples}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        if model_dir is None and scorer is None:
            raise ValueError("give the reward model folder (model_dir) or a scorer")
        self.model_dir, self.host, self.port = model_dir, host, port
        self.max_batch_size, self.max_wait_s = max_batch_size, max_wait_ms / 1000
        self.max_body_bytes, self.request_timeout_s = max_body_bytes, request_timeout_s
        self.max_request_samples = max_request_samples
        self.scorer, self.device = scorer, device
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # signalled when a request arrives or the server stops
        self._waiting: deque[_Job] = deque()  # requests with samples not yet in a batch, in round-robin order
        self._counts = Counter()
        self._histogram: Counter = Counter()
        self._clients: Counter = Counter()  # requests by the client's name (CLIENT_HEADER), else its address
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stopping = False

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> RewardModelServer:
        if self._http is not None:
            raise RuntimeError("the server is already running")
        if self.scorer is None:
            from ..reward_model.scorer import RewardScorer

            self.scorer = RewardScorer(
                self.model_dir, batch_size=self.max_batch_size, normalize=True, device=self.device
            )
        self._stopping = False
        self._http = _HTTPServer((self.host, self.port), _Handler, self)
        self.port = self._http.server_address[1]  # the port the system chose, when asked for port 0
        self._threads = [
            threading.Thread(target=self._batching_worker, name="rm-batching-worker", daemon=True),
            threading.Thread(
                target=self._http.serve_forever, name="rm-http", kwargs={"poll_interval": 0.1}, daemon=True
            ),
        ]
        for thread in self._threads:
            thread.start()
        return self

    @property
    def url(self) -> str:
        if self._http is None:
            raise RuntimeError("the server is not running: call start() first")
        return f"http://{self.host}:{self.port}"

    def stop(self) -> None:
        if self._http is None:
            return
        with self._work:  # samples submitted before this are scored; later ones are refused
            self._stopping = True
            self._work.notify_all()
        self._http.shutdown()  # no new connections
        for thread in self._threads:
            thread.join(timeout=30)
        self._http.server_close()
        self._http = None
        with self._lock:  # only if the worker did not finish in time: every request gets an answer, not a hang
            while self._waiting:
                self._waiting.popleft().fail("the server is stopping")

    def __enter__(self) -> RewardModelServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def stats(self) -> dict:
        """``requests`` (POSTs received), ``samples`` (scored), ``batches``, ``batch_size_histogram``
        ({size: batches}), ``errors`` (answers with a 4xx/5xx status), ``truncated`` (texts cut to the RM's
        length; the scorer counts them), ``requests_by_client`` ({client: POSTs}: the client's
        ``X-Distill-Client`` header, e.g. ``ray-node:ID``, else its address)."""
        with self._lock:
            return {
                "requests": self._counts["requests"],
                "samples": self._counts["samples"],
                "batches": self._counts["batches"],
                "batch_size_histogram": dict(sorted(self._histogram.items())),
                "errors": self._counts["errors"],
                "truncated": getattr(self.scorer, "truncated", 0),
                "requests_by_client": dict(sorted(self._clients.items())),
            }

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _count_request(self, client: str) -> None:
        with self._lock:
            self._counts["requests"] += 1
            self._clients[client] += 1

    # --- batching ----------------------------------------------------------------------------------------------
    def submit(self, texts: list[str]) -> _Job:
        job = _Job(texts)
        with self._work:
            if self._stopping:
                job.fail("the server is stopping")
                return job
            self._waiting.append(job)
            self._work.notify()
        return job

    def _take(self, batch: list) -> None:
        """Fills ``batch`` one sample per waiting request in turn (the lock held): a request of thousands of
        samples and one of a single sample share each batch, so the small one waits one batch, not thousands."""
        while len(batch) < self.max_batch_size and self._waiting:
            job = self._waiting.popleft()
            if job.done.is_set():  # failed or timed out: its other samples need no scoring
                continue
            batch.append((job, job.next_index))
            job.next_index += 1
            if job.next_index < len(job.texts):
                self._waiting.append(job)

    def _next_batch(self) -> tuple[list, bool]:
        """Blocks for a first sample, then gathers more until the batch is full or max_wait has passed since the
        first one. Returns the batch and whether the worker should stop (stopping, and nothing left to score)."""
        with self._work:
            while not self._waiting and not self._stopping:
                self._work.wait()
            batch, deadline = [], time.monotonic() + self.max_wait_s
            self._take(batch)
            while batch and len(batch) < self.max_batch_size and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._work.wait(remaining)
                self._take(batch)
            return batch, self._stopping and not self._waiting

    def _batching_worker(self) -> None:
        stopping = False
        while not stopping:
            batch, stopping = self._next_batch()
            if batch:
                self._score(batch)

    def _score(self, batch: list) -> None:
        try:
            rewards = self.scorer.scores([job.texts[index] for job, index in batch])
            if len(rewards) != len(batch):
                raise RuntimeError(f"the scorer returned {len(rewards)} rewards for {len(batch)} texts")
        except Exception as error:  # this batch's requests get a 500; the server keeps serving
            logger.exception("reward model server: scoring a batch of %d failed", len(batch))
            for job, _ in batch:
                job.fail(f"scoring failed: {type(error).__name__}: {error}")
            return
        with self._lock:
            self._counts["batches"] += 1
            self._counts["samples"] += len(batch)
            self._histogram[len(batch)] += 1
        for (job, index), reward in zip(batch, rewards, strict=True):
            job.set_reward(index, float(reward))


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024  # the listen backlog: many rollout threads connect at once (the default is 5)

    def __init__(self, address, handler, owner: RewardModelServer):
        self.owner = owner
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server_version = "openrlhf-distill-rm"

    def log_message(self, format, *args):  # the default writes every request to stderr
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, payload: dict) -> None:
        if status >= 400:
            self.server.owner._count("errors")
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _path(self) -> str:
        return self.path.split("?", 1)[0].rstrip("/") or "/"

    def do_GET(self):
        owner, path = self.server.owner, self._path()
        if path == "/health":
            self._send(
                200,
                {
                    "status": "ok",
                    "model": owner.model_dir,
                    "max_batch_size": owner.max_batch_size,
                    "max_request_samples": owner.max_request_samples,
                },
            )
        elif path == "/stats":
            self._send(200, owner.stats())
        elif path == "/score":
            self._send(405, {"error": "POST to /score (a JSON body), not GET"})
        else:
            self._send(404, {"error": f"no such path {path!r}; the server has POST /score, GET /health, GET /stats"})

    def do_POST(self):
        owner = self.server.owner
        owner._count_request(self.headers.get(CLIENT_HEADER) or self.client_address[0])
        if self._path() != "/score":
            self._send(404, {"error": f"no such path {self._path()!r}; POST to /score"})
            return
        try:
            texts = texts_to_score(self._read_json(owner.max_body_bytes), owner.scorer.eos_token)
            if len(texts) > owner.max_request_samples:
                raise BadRequest(
                    413,
                    f"{len(texts)} samples in one request, over the limit of "
                    f"{owner.max_request_samples}: send them in smaller requests",
                )
        except BadRequest as bad:
            self._send(bad.status, {"error": bad.message})
            return
        job = owner.submit(texts)
        if not job.done.wait(owner.request_timeout_s):
            job.fail("timed out")  # a later result for it is dropped: this request is answered here, once
            self._send(504, {"error": f"not scored within {owner.request_timeout_s:g} s"})
        elif job.error is not None:
            self._send(500, {"error": job.error})
        else:
            self._send(200, {"rewards": job.rewards, "scores": job.rewards})

    def _read_json(self, limit: int):
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            self.close_connection = True
            raise BadRequest(
                411 if length is None else 400, f"header 'Content-Length' must be a byte count, got {length!r}"
            )
        if int(length) > limit:
            self.close_connection = True  # the body is not read: the connection cannot be reused
            raise BadRequest(413, f"body of {int(length)} bytes is over the limit of {limit} bytes")
        raw = self.rfile.read(int(length))
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequest(400, f"body is not valid JSON: {error}") from None


def advertised_address(host: str, towards: str | None = None) -> str:
    """The address clients should call for a server listening on ``host``: for every interface (0.0.0.0, ::),
    this machine's address on the route to ``towards`` (the Ray cluster's address: what its nodes reach this
    machine by) unless that route is loopback, else this node's IP as Ray finds it; otherwise ``host`` itself."""
    if host not in ("0.0.0.0", "::", ""):
        return host
    if towards:
        from urllib.parse import urlsplit

        parts = urlsplit(towards if "://" in towards else "//" + towards)
        try:  # a UDP "connection" sends nothing: it only asks the kernel which local address routes there
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((parts.hostname or "127.0.0.1", parts.port or 80))
                local = probe.getsockname()[0]
            # A cluster reached over loopback (`ray job submit --address http://127.0.0.1:8265` on the head node)
            # says nothing of how its other nodes reach this machine: Ray's node address below does.
            if not local.startswith("127."):
                return local
        except OSError:
            pass
    try:
        from ray.util import get_node_ip_address

        return get_node_ip_address()
    except Exception:  # no Ray, or no route: the host name, which other nodes can usually resolve
        return socket.gethostname()


# --- client --------------------------------------------------------------------------------------------------------
def score_endpoint(url: str) -> str:
    """``http://host:port`` or ``.../score`` -> the /score endpoint."""
    url = url.rstrip("/")
    return url if url.endswith("/score") else url + "/score"


def client_name() -> str:
    """How this process names itself to the server: ``ray-node:ID`` inside a Ray worker or driver (a rollout
    actor), else ``host:NAME``. Ray is not imported for it: a process that has not imported Ray is not in Ray."""
    ray = sys.modules.get("ray")
    try:
        if ray is not None and ray.is_initialized():
            return f"ray-node:{ray.get_runtime_context().get_node_id()}"
    except Exception:  # a Ray too old or half shut down: the host still says where the call came from
        pass
    return f"host:{socket.gethostname()}"


def _post(endpoint: str, body: bytes, timeout: float) -> dict:
    headers = {"Content-Type": "application/json", CLIENT_HEADER: client_name()}
    request = urllib.request.Request(endpoint, data=body, headers=headers)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())


def score(url: str, prompts: list[str], responses: list[str], timeout: float = 120.0, retries: int = 3) -> list[float]:
    """Normalised RM rewards of ``prompt + response`` pairs from a :class:`RewardModelServer` at ``url``.

    Connection failures (server starting, restarting, backlog full) are retried ``retries`` times with backoff,
    within ``timeout`` overall; an error answer or a timeout is not retried (the server did or may still do the
    work). Raises :class:`RewardServerError` with the server's message.
    """
    if len(prompts) != len(responses):
        raise ValueError(f"{len(prompts)} prompts but {len(responses)} responses")
    endpoint = score_endpoint(url)
    body = json.dumps({"prompt": list(prompts), "response": list(responses)}).encode()
    deadline = time.monotonic() + timeout
    for attempt in range(retries + 1):
        try:
            payload = _post(endpoint, body, timeout=max(deadline - time.monotonic(), 0.1))
            break
        except urllib.error.HTTPError as error:  # the server answered: say what it said
            try:
                message = json.loads(error.read())["error"]
            except Exception:  # not our server, or not JSON: the status line is all there is
                message = f"{error.reason} (not an openrlhf-distill reward-model server?)"
            raise RewardServerError(f"reward-model server {endpoint} answered {error.code}: {message}") from None
        except (urllib.error.URLError, ConnectionError, http.client.HTTPException, TimeoutError) as error:
            reason = getattr(error, "reason", error)
            retryable = not isinstance(reason, TimeoutError) and not isinstance(error, TimeoutError)
            if not retryable or attempt == retries or time.monotonic() + 0.5 * 2**attempt > deadline:
                raise RewardServerError(
                    f"cannot get rewards from {endpoint} ({attempt + 1} tries, timeout {timeout:g} s): {reason}. "
                    "Is `openrlhf-distill serve-rm --model RM_DIR` running at that address?"
                ) from None
            time.sleep(0.5 * 2**attempt)
    rewards = payload.get("rewards") if isinstance(payload, dict) else None
    if not isinstance(rewards, list) or len(rewards) != len(prompts):
        raise RewardServerError(f"{endpoint} answered without {len(prompts)} rewards: {str(payload)[:200]}")
    return [float(r) for r in rewards]


# --- CLI: openrlhf-distill serve-rm -------------------------------------------------------------------------------
PATHS = (Input("model", "model", "the reward model folder (an OpenRLHF RM checkpoint)", required=True),)


def check(args) -> None:
    """The address is free: a busy port is refused before the model loads (which takes seconds to minutes)."""
    settings = from_args(args, ServerSettings)
    if settings.port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the HTTP server binds
        try:
            probe.bind((settings.host, settings.port))
        except OSError as error:
            raise ValueError(
                f"--host {settings.host} --port {settings.port}: cannot listen there ({error.strerror}); choose "
                "another --port (0: any free one)"
            ) from None


def run(args) -> int:
    """Serves until Ctrl-C (or SIGTERM), then prints the server's counts."""
    import faulthandler
    import signal

    from ..model_folders import check_reward_model

    check_reward_model(args.model)
    server = RewardModelServer(args.model, **asdict(from_args(args, ServerSettings)))
    print(f"loading the reward model {args.model} ...", flush=True)
    server.start()

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, interrupt)
    print(
        f"reward-model server at {server.url} (batches of up to {args.max_batch_size}, wait {args.max_wait_ms:g} "
        f"ms)\n  hybrid scheme: rm_url {server.url}\n  as OpenRLHF's remote RM: --reward.remote_url "
        f"{server.url}/score\nCtrl-C stops it.",
        flush=True,
    )
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        # stop() waits at most 30 s for each of its threads; if it takes longer, every thread's stack goes to
        # stderr (one CI run saw a stop that never ended, with nothing to show where it waited).
        faulthandler.dump_traceback_later(75)
        server.stop()
        faulthandler.cancel_dump_traceback_later()
        print(f"stopped; {json.dumps(server.stats())}", flush=True)
    return 0
