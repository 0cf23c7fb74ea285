"""`openrlhf-distill ppo --ray.submit` on a multi-node Ray cluster, on this machine.

Three Ray nodes (`ray start --head` and two `ray start --address`, each with its own temporary folder, ports and
one *logical* GPU: the CPU engine's stand-in for a GPU cluster) and a hybrid PPO run submitted as a Ray job from
another working folder. Each node can hold one of OpenRLHF's {"GPU": 1} bundles, so the two vLLM engines and the
actor land on three different nodes (OpenRLHF packs its engines into one placement group: on two nodes with room
for both they would share one).

Shown: the job finishes its PPO steps on the CPU engine; on every node the package the workers run is the copy
the job's runtime environment shipped to that node (its own temporary folder), with the CPU patches applied
there; relative paths given from the submitting folder resolve; and the reward function in the rollout actors
of both engines' nodes calls the RM server the `ppo` command serves on this machine's routable address. And a run
joining the cluster (no job) with a GPU plan larger than its nodes declare is refused at once, not left waiting.
And a hybrid run whose driver finds the cluster itself (no address given, OpenRLHF's documented `ray start`
workflow) serves its RM where every node can reach it.
"""

import ast
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from openrlhf_distill.compat import cpu_patches, patches, rl_cpu_patches
from openrlhf_distill.records import encode_reward_label

pytestmark = pytest.mark.slow

BIN = os.path.dirname(sys.executable)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _node_env() -> dict:
    """What `ray start` runs with: none of the plugin's own settings, which must come from the job."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENRLHF_DISTILL_", "RAY_"))}
    env.pop("PYTHONPATH", None)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


class LocalCluster:
    """Ray nodes started with `ray start --block` (stopping that process stops its node's Ray processes); never
    `ray stop`, which would stop every Ray of this user."""

    def __init__(self):
        self.gcs_port, self.dashboard_port = _free_port(), _free_port()
        self.nodes: list[tuple[subprocess.Popen, str]] = []

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    @property
    def ray_tmpdir(self) -> str:
        """RAY_TMPDIR for a process that should find the cluster as `ray start` leaves it for `ray.init()`:
        the head's temporary folder is RAY_TMPDIR/ray, where its address file (ray_current_cluster) is."""
        return os.path.dirname(self.nodes[0][1])

    def start_node(self, head: bool, gpus: int, cpus: int) -> str:
        # A short folder: Ray's socket paths must fit in 107 characters.
        temp_dir = tempfile.mkdtemp(prefix="rh" if head else "rw", dir="/tmp")
        if head:
            temp_dir = os.path.join(temp_dir, "ray")
        ports = {
            "--node-manager-port": _free_port(),
            "--object-manager-port": _free_port(),
            "--dashboard-agent-listen-port": _free_port(),
            "--dashboard-agent-grpc-port": _free_port(),
            "--runtime-env-agent-port": _free_port(),
            "--metrics-export-port": _free_port(),
        }
        first = 23000 + 1000 * len(self.nodes)  # each node's workers in a range of their own
        args = [f"{k}={v}" for k, v in ports.items()]
        args += [f"--min-worker-port={first}", f"--max-worker-port={first + 999}"]
        if head:
            args += ["--head", f"--port={self.gcs_port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1"]
            args += [f"--dashboard-port={self.dashboard_port}", f"--ray-client-server-port={_free_port()}"]
        else:
            args += ["--address", f"127.0.0.1:{self.gcs_port}"]
        log = open(temp_dir + ".log", "w")
        process = subprocess.Popen(
            [os.path.join(BIN, "ray"), "start", "--block", f"--temp-dir={temp_dir}", f"--num-gpus={gpus}",
             f"--num-cpus={cpus}", *args],
            env=_node_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        self.nodes.append((process, temp_dir))
        return temp_dir

    def wait_for(self, nodes: int, timeout: float = 120) -> list[dict]:
        from ray.util.state import list_nodes

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process, temp_dir in self.nodes:
                assert process.poll() is None, open(temp_dir + ".log").read()[-3000:]
            try:
                alive = [n for n in list_nodes(address=self.dashboard) if n.state == "ALIVE"]
                if len(alive) == nodes:
                    return alive
            except Exception:  # the dashboard is still starting
                pass
            time.sleep(2)
        raise TimeoutError(f"{nodes} Ray nodes did not come up in {timeout} s")

    def stop(self) -> None:
        for process, _ in self.nodes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.nodes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        for _, temp_dir in self.nodes:
            shutil.rmtree(temp_dir, ignore_errors=True)
            os.remove(temp_dir + ".log")
        if self.nodes:
            shutil.rmtree(self.ray_tmpdir, ignore_errors=True)


def _one_prompt(tmp_path):
    """A prompt file of one labelled row, for runs that are refused or only planned."""
    label = encode_reward_label(id="0", task="arithmetic", label="7", gold="7")
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(json.dumps({"input": [{"role": "user", "content": "Pick a number"}], "distill_label": label}))
    return prompts


@pytest.fixture(scope="module")
def cluster():
    cluster = LocalCluster()
    try:
        cluster.start_node(head=True, gpus=1, cpus=3)  # 2 CPUs more than bundles: the job's driver and controller
        cluster.wait_for(1)
        for _ in range(2):
            cluster.start_node(head=False, gpus=1, cpus=1)
        cluster.nodes_alive = cluster.wait_for(3)
        yield cluster
    finally:
        cluster.stop()


def test_hybrid_ppo_submitted_as_a_ray_job_runs_on_three_nodes(cluster, tiny_model, tmp_path):
    from ray.util.state import list_actors

    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    elsewhere = tmp_path / "submitting_folder"
    elsewhere.mkdir()
    build_tiny_reward_model(str(elsewhere / "rm"), tiny_model)
    with open(elsewhere / "prompts.jsonl", "w") as f:
        for i in range(16):
            label = encode_reward_label(id=str(i), task="arithmetic", label="7", gold="7")
            f.write(json.dumps({"input": [{"role": "user", "content": f"Pick a number {i}"}], "distill_label": label}))
            f.write("\n")
    steps = 2
    flags = (
        f"--engine cpu --ray.address {cluster.dashboard} --ray.submit --reward.scheme hybrid "
        f"--actor.model_name_or_path {tiny_model} --reward.model_name_or_path rm "
        "--data.prompt_dataset prompts.jsonl --data.input_key input --data.apply_chat_template "
        f"--data.max_samples {4 * steps} --data.max_len 48 --rollout.max_new_tokens 4 --rollout.batch_size 4 "
        "--rollout.micro_batch_size 4 --rollout.n_samples_per_prompt 2 --train.batch_size 8 "
        "--train.micro_batch_size 4 --train.seed 1 --vllm.num_engines 2 --algo.kl.init_coef 0 "
        "--algo.advantage.estimator group_norm --distill.reward.alpha 0.5 --distill.reward.beta 1.0 "
        "--ckpt.output_dir out"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["OPENRLHF_DISTILL_PATCHES_VERBOSE"] = "1"  # each process says which copy of the package it runs
    result = subprocess.run(
        [sys.executable, "-m", "openrlhf_distill.cli", "ppo", *flags.split()],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]

    # The relative paths resolved against the submitting folder, not the job's (a copy Ray makes).
    run_dir = elsewhere / "out" / "distill_ppo"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == steps and (elsewhere / "out" / "model.safetensors").exists()
    assert f"--data.prompt_dataset {elsewhere}/prompts.jsonl" in summary["command"]
    assert "ray.scripts.scripts job submit" in summary["command"]

    # Two vLLM engines on two different nodes; the reward calls came from exactly those nodes.
    engines = list_actors(address=cluster.dashboard, filters=[("class_name", "=", "RolloutRayActor")], detail=True)
    engine_nodes = {actor.node_id for actor in engines}
    assert len(engines) == 2 and len(engine_nodes) == 2, engines
    clients = summary["rm_server"]["requests_by_client"]
    assert set(clients) == {f"ray-node:{node}" for node in engine_nodes}, clients
    assert summary["rm_server"]["samples"] == steps * 8  # every rollout sample scored once
    config = re.search(r"CONFIG = json.loads\((.*)\)", (run_dir / "reward_func_hybrid.py").read_text())[1]
    assert not json.loads(ast.literal_eval(config))["rm_url"].startswith("http://127.")  # other nodes reach it
    for step in (json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()):
        assert step["rollout/reward_mean"] == pytest.approx(
            0.5 * step["distill/rm_reward"] + step["distill/pseudo_correct"], abs=1e-4
        )

    # Every node's workers ran the package the job shipped to that node, and the CPU patches acted there: read
    # in the logs of each node's own processes (the job's log gets them too, but deduplicated and late; a
    # worker's first lines, before Ray points its output at its own log file, are in the raylet's).
    assert cpu_patches and rl_cpu_patches  # imported to register the CPU group's patches (none is applied here)
    cpu_group = {p.name for p in patches.PATCHES if p.group == "cpu"}
    for _, temp_dir in cluster.nodes:
        logs = glob.glob(f"{temp_dir}/session_latest/logs/worker-*") + glob.glob(
            f"{temp_dir}/session_latest/logs/raylet.*"
        )
        text = "".join(open(path, errors="replace").read() for path in logs)
        shipped = {}  # pid -> where its package came from
        for pid, where in re.findall(r"patches pid=(\d+)\] openrlhf_distill from ([^\s\x1b]+)", text):
            assert where.startswith(f"{temp_dir}/session_") and "/runtime_resources/py_modules_files/" in where, where
            shipped[pid] = where
        patched = {pid for pid, name in re.findall(r"patches pid=(\d+)\] applied (\S+)", text) if name in cpu_group}
        assert shipped.keys() & patched, f"no worker on the node of {temp_dir} ran the shipped package, patched"


def test_a_run_the_cluster_cannot_hold_fails_at_once_naming_the_plan(cluster, tiny_model, tmp_path):
    """Joining the cluster from this machine (--ray.address, no job): 3 vLLM engines and the actor need 4 GPUs,
    the nodes declare 3. OpenRLHF would wait on its placement groups for ever; the driver refuses at once."""
    prompts = _one_prompt(tmp_path)
    flags = (
        f"--engine cpu --ray.address 127.0.0.1:{cluster.gcs_port} --reward.scheme vote "
        f"--actor.model_name_or_path {tiny_model} --data.prompt_dataset {prompts} --data.input_key input "
        "--data.apply_chat_template --vllm.num_engines 3 --algo.kl.init_coef 0 --rollout.n_samples_per_prompt 2 "
        f"--algo.advantage.estimator group_norm --ckpt.output_dir {tmp_path / 'out'}"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    result = subprocess.run(
        [sys.executable, "-m", "openrlhf_distill.cli", "ppo", *flags.split()],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode != 0
    output = result.stdout + result.stderr
    cluster_gpus = f"the Ray cluster at 127.0.0.1:{cluster.gcs_port} (3 node(s) with 1, 1, 1 GPUs)"
    assert f"the GPU plan needs 4 GPUs, {cluster_gpus} has 3" in output, output[-3000:]
    assert "vLLM: 3 GPU(s) (3 engine(s) x 1)" in output
    assert "pass --distill.cluster.autoscaling to skip this check" in output  # the way out for autoscaling clusters


def test_a_driver_that_finds_the_cluster_itself_gets_an_rm_server_every_node_reaches(cluster, tiny_model, tmp_path):
    """No --ray.address and no RAY_ADDRESS: ray.init() joins the cluster `ray start` set up on this machine (its
    address file in Ray's temporary folder), as OpenRLHF's own docs run PPO. The hybrid RM server must then
    listen on every interface and the reward function call this machine's address on the route to the cluster,
    the address the nodes know it by, not 127.0.0.1 (each node itself). With no cluster to find, 127.0.0.1."""
    from openrlhf_distill.toy.tiny_model import build_tiny_reward_model

    build_tiny_reward_model(str(tmp_path / "rm"), tiny_model)
    prompts = _one_prompt(tmp_path)
    flags = (
        f"--engine gpu --reward.scheme hybrid --actor.model_name_or_path {tiny_model} "
        f"--reward.model_name_or_path {tmp_path / 'rm'} --data.prompt_dataset {prompts} --data.input_key input "
        "--data.apply_chat_template --rollout.n_samples_per_prompt 2 --algo.advantage.estimator group_norm "
        f"--algo.kl.init_coef 0 --ckpt.output_dir {tmp_path / 'out'} --distill.rm_server.device cpu --dry_run"
    )
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}

    def served(ray_tmpdir: str) -> tuple[str, str]:
        result = subprocess.run(
            [sys.executable, "-m", "openrlhf_distill.cli", "ppo", *flags.split()],
            env={**env, "RAY_TMPDIR": ray_tmpdir}, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        found = re.search(r"listening on (\S+); rollouts call http://([^:]+):\d+", result.stderr)
        assert found, result.stderr[-3000:]
        return found.group(1), found.group(2)

    with open(os.path.join(cluster.ray_tmpdir, "ray", "ray_current_cluster")) as f:
        head_ip = f.read().strip().rsplit(":", 1)[0]  # what the nodes joined
    listens, called = served(cluster.ray_tmpdir)
    assert listens == "0.0.0.0" and called == head_ip
    assert {node.node_ip for node in cluster.nodes_alive} == {called}  # the address Ray itself knows this machine by
    assert served(str(tmp_path)) == ("127.0.0.1", "127.0.0.1")  # nothing to join: a Ray of the driver's own


def test_the_pipelines_preflight_checks_ppo_plans_against_the_live_cluster(cluster, tiny_model, tmp_path):
    """Before its first stage, `run` asks the cluster its PPO stages will join (here by its own address and by its
    dashboard) for the GPUs its nodes declare: a plan of 4 GPUs on 3 nodes of 1 is refused then, not when the PPO
    stage starts days later; one of 2 passes; an address that does not answer is left to the driver."""
    from openrlhf_distill import cli
    from openrlhf_distill.compat import ray_driver
    from openrlhf_distill.pipeline import preflight, stages

    prompts = _one_prompt(tmp_path)

    def ppo_stage(engines: int, address: str):
        argv = (
            f"ppo --engine cpu --ray.address {address} --reward.scheme vote --actor.model_name_or_path {tiny_model} "
            f"--data.prompt_dataset {prompts} --data.input_key input --data.apply_chat_template "
            f"--vllm.num_engines {engines} --algo.kl.init_coef 0 --rollout.n_samples_per_prompt 2 "
            f"--algo.advantage.estimator group_norm"
        ).split()
        return stages.Stage("rl", f"rl_vote@seed{engines}", 0, argv, str(tmp_path / f"rl{engines}"), partial=True)

    assert ray_driver.declared_gpus(f"127.0.0.1:{cluster.gcs_port}") == [1.0, 1.0, 1.0]
    assert sorted(ray_driver.declared_gpus(cluster.dashboard)) == [1.0, 1.0, 1.0]
    for address in (f"127.0.0.1:{cluster.gcs_port}", cluster.dashboard):
        planned = [ppo_stage(1, address), ppo_stage(3, address)]
        checked = preflight.check_stages(planned, cli.check_command)
        with pytest.raises(preflight.PreflightError) as refused:
            preflight.check_live_cluster(planned, checked)
        message = str(refused.value)
        assert message.startswith("stage rl_vote@seed3 would fail: the GPU plan needs 4 GPUs") and "has 3" in message
        assert preflight.check_live_cluster(planned[:1], checked) == [
            f"# Ray cluster {address}: 3 node(s), 3 GPUs; every PPO plan fits"
        ]
    silent = [ppo_stage(3, f"127.0.0.1:{_free_port()}")]
    (line,) = preflight.check_live_cluster(silent, preflight.check_stages(silent, cli.check_command))
    assert "not reachable from here" in line
