"""The openai backend: any OpenAI-compatible HTTP server (``vllm serve``, a hosted teacher) as a black box.

Chat-message prompts go to ``{base_url}/chat/completions``, plain strings to ``{base_url}/completions``. Requests
run ``concurrency`` at a time; connection errors, timeouts, HTTP 429 and 5xx are retried with exponential backoff
and jitter (honouring Retry-After); authentication failures and other 4xx stop at once with the server's words.
Only the standard library is used, so a black-box teacher needs nothing installed beyond this package.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from .backend import Backend, BackendError, BackendInfo, Completion, Request

RETRY_STATUS = {408, 409, 425, 429}  # plus every 5xx
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is waited on this long, then asked again


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OpenAIBackend(Backend):
    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 8,
        max_retries: int = 4,
        timeout_s: float = 300,
        backoff_s: float = 1.0,
    ):
        if not base_url.startswith(("http://", "https://")):
            raise BackendError(
                f"openai backend: base_url {base_url!r} must start with http:// or https:// "
                "(e.g. http://127.0.0.1:8000/v1)"
            )
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key
        self.concurrency = max(1, concurrency)
        self.max_retries = max(0, max_retries)
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self._lock = threading.Lock()  # guards the counters in info.extra, updated from worker threads
        self.info = BackendInfo(
            name="openai",
            model=model,
            reproducible="only if the server honours `seed` (vLLM's server does, for the same model, version and "
            "hardware; hosted APIs call it best effort): the same seed is sent for the same request",
            extra={
                "base_url": self.base_url,
                "concurrency": self.concurrency,
                "greedy": "sampled once and repeated n times",
                "http_requests": 0,
                "retries": 0,
                "top_up_requests": 0,  # extra requests because the server returned fewer than n choices
                "token_counts": "usage.completion_tokens",
            },
        )

    def generate(self, requests: list[Request]) -> list[list[Completion]]:
        if not requests:
            return []
        abort = threading.Event()  # set on the first failure, so other threads stop retrying
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="openai-backend")
        try:
            futures = [pool.submit(self._complete, request, abort) for request in requests]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in futures if f in done and f.exception() is not None), None)
            if failed is not None:
                raise failed.exception()
            return [f.result() for f in futures]
        except BaseException:
            abort.set()
            raise
        finally:
            pool.shutdown(wait=not abort.is_set(), cancel_futures=True)

    def _complete(self, request: Request, abort: threading.Event) -> list[Completion]:
        """All ``n`` completions of one request: one HTTP call, and more if the server ignored ``n``."""
        greedy = request.temperature == 0
        wanted = 1 if greedy else request.n
        completions: list[Completion] = []
        while len(completions) < wanted:
            # A top-up call uses a new seed: a server that ignores n but honours seed would repeat the sample.
            batch = self._call(request, wanted - len(completions), request.seed + len(completions), abort)
            if completions:
                self._count("top_up_requests")
                self._note("n", "the server returned fewer choices than n: topped up with requests at seed + k")
            completions.extend(batch[: wanted - len(completions)])
        return completions * request.n if greedy else completions

    def _call(self, request: Request, n: int, seed: int, abort: threading.Event) -> list[Completion]:
        chat = not isinstance(request.prompt, str)
        url = f"{self.base_url}/{'chat/completions' if chat else 'completions'}"
        body = {
            "model": self.model,
            ("messages" if chat else "prompt"): request.prompt,
            "n": n,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "max_tokens": request.max_new_tokens,
            "seed": seed,
        }
        if request.stop:
            body["stop"] = list(request.stop)
        response = self._post(url, body, abort)
        choices = sorted(response.get("choices") or [], key=lambda c: c.get("index", 0))
        if not choices:
            raise BackendError(f"openai backend: {url} answered with no choices: {json.dumps(response)[:300]}")
        texts = [((c.get("message") or {}).get("content") or "") if chat else (c.get("text") or "") for c in choices]
        finishes = ["length" if c.get("finish_reason") == "length" else "stop" for c in choices]
        total = (response.get("usage") or {}).get("completion_tokens")
        if not isinstance(total, int):
            self._note("token_counts", "estimated by whitespace (the server sent no usage)")
            counts = [len(text.split()) for text in texts]
        elif len(choices) == 1:
            counts = [total]
        else:
            self._note("token_counts", "usage.completion_tokens, shared across the choices of a response")
            counts = share_token_count(total, texts, finishes, request.max_new_tokens)
        return [Completion(*fields) for fields in zip(texts, finishes, counts, strict=True)]

    def _post(self, url: str, body: dict, abort: threading.Event) -> dict:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "User-Agent": "openrlhf-distill"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last_error = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count("retries")
            self._count("http_requests")
            try:
                return self._post_once(url, data, headers)
            except _Retryable as e:
                last_error = str(e)
                if attempt == self.max_retries:
                    break
                delay = self.backoff_s * 2**attempt * (0.5 + random.random())  # jitter spreads out retries
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, MAX_RETRY_AFTER_S))
                if abort.wait(delay):
                    break
        raise BackendError(f"openai backend: POST {url} failed after {self.max_retries} retries: {last_error}")

    def _post_once(self, url: str, data: bytes, headers: dict) -> dict:
        request = urllib.request.Request(url, data=data, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = response.read()
        except urllib.error.HTTPError as e:
            message = _error_message(e)
            if e.code in (401, 403):
                raise BackendError(
                    f"openai backend: {url}: authentication failed (HTTP {e.code}: {message}); set "
                    "OPENAI_API_KEY or --openai.api_key_env to a valid key"
                ) from None
            if e.code in RETRY_STATUS or e.code >= 500:
                raise _Retryable(f"HTTP {e.code}: {message}", _retry_after(e.headers.get("Retry-After"))) from None
            raise BackendError(f"openai backend: {url} refused the request (HTTP {e.code}): {message}") from None
        except (OSError, http.client.HTTPException) as e:  # refused, reset, timed out, cut short
            reason = getattr(e, "reason", e)
            raise _Retryable(f"{type(e).__name__}: {reason}") from None
        try:
            answer = json.loads(payload)
        except ValueError:
            raise _Retryable(f"the answer was not JSON: {payload[:200]!r}") from None
        if not isinstance(answer, dict):
            raise BackendError(f"openai backend: {url} answered {payload[:200]!r}, not a JSON object")
        return answer

    def _count(self, key: str) -> None:
        with self._lock:
            self.info.extra[key] += 1

    def _note(self, key: str, value: str) -> None:
        with self._lock:
            self.info.extra[key] = value


def share_token_count(total: int, texts: list[str], finishes: list[str], max_new_tokens: int) -> list[int]:
    """Per-choice token counts from the one ``usage.completion_tokens`` of a response with several choices.

    A choice cut by max_tokens used exactly ``max_new_tokens``; the others share the rest in proportion to their
    text length (exact when there is one such choice).
    """
    counts: list[int] = [max_new_tokens if finish == "length" else 0 for finish in finishes]
    shared = [i for i, finish in enumerate(finishes) if finish != "length"]
    rest = total - sum(counts)
    if rest < 0 or (rest and not shared):  # a server that counts otherwise: share everything by length
        counts, shared, rest = [0] * len(texts), list(range(len(texts))), total
    if shared:
        chars = [max(1, len(texts[i])) for i in shared]
        for i, c in zip(shared, chars, strict=True):
            counts[i] = rest * c // sum(chars)
        counts[shared[-1]] += rest - sum(counts[i] for i in shared)
    return counts


def _error_message(error: urllib.error.HTTPError) -> str:
    """The server's own words: OpenAI's {"error": {"message"}}, vLLM's {"message"}, or the raw body."""
    try:
        raw = error.read().decode(errors="replace")
    except OSError:
        return error.reason or ""
    try:
        body = json.loads(raw)
    except ValueError:
        return raw.strip()[:500] or str(error.reason)
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        return str(inner.get("message") or inner)[:500]
    return str(inner)[:500]


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds, given as a number or as an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
