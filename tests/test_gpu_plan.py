"""The GPU plan of a PPO run, computed from its flags as OpenRLHF 0.11.2 places its groups, and the refusal of a
plan that does not fit the declared cluster (OpenRLHF itself would wait for the missing GPUs for ever)."""

import pytest

from openrlhf_distill import ppo
from openrlhf_distill.compat import gpu_plan, ray_driver, rehearsal

BASE = [
    "--actor.model_name_or_path",
    "/models/student",
    "--data.prompt_dataset",
    "rl.jsonl",
    "--rollout.n_samples_per_prompt",
    "4",
]
# The layout the cluster recipes had before the plan was checked: 12 GPUs on a node of 8.
OLD_LAYOUT = [
    "--actor.num_gpus_per_node",
    "4",
    "--ref.num_gpus_per_node",
    "2",
    "--critic.num_gpus_per_node",
    "2",
    "--reward.num_gpus_per_node",
    "2",
    "--vllm.num_engines",
    "2",
    "--algo.advantage.estimator",
    "gae",
    "--algo.kl.init_coef",
    "0.01",
]


def _plan(scheme: str, *flags: str) -> list[gpu_plan.Placement]:
    argv = [*BASE, *(["--reward.model_name_or_path", "/models/rm"] if scheme == "rm" else []), *flags]
    namespace = ppo.validate(ppo.plan(argv, ppo.PPOOptions(scheme=scheme, task="gsm8k", engine="gpu")))
    return gpu_plan.plan(namespace)


def _shape(placements):
    return [(p.members, p.gpus) for p in placements]


def test_separate_groups_each_take_their_own_gpus_and_an_over_budget_plan_is_refused_naming_the_way_out():
    placements = _plan("rm", *OLD_LAYOUT)
    assert _shape(placements) == [(("vLLM",), 2), (("actor",), 4), (("ref",), 2), (("critic",), 2), (("reward",), 2)]
    with pytest.raises(ValueError) as refused:
        gpu_plan.check_fits(placements, nodes=1, gpus_per_node=8)
    message = str(refused.value)
    assert "needs 12 GPUs, the cluster (1 node(s) x 8 GPUs) has 8" in message and "missing 4" in message
    assert "--train.colocate_actor_ref" in message and "--train.colocate_critic_reward" in message
    assert "fewer GPUs for actor" in message  # the largest group
    gpu_plan.check_fits(placements, nodes=2, gpus_per_node=8)  # two nodes hold it


def test_a_reward_function_scheme_has_no_reward_group_and_no_kl_term_no_reference_model():
    assert _shape(_plan("vote", *OLD_LAYOUT)) == [(("vLLM",), 2), (("actor",), 4), (("ref",), 2), (("critic",), 2)]
    no_kl = _plan("vote", *OLD_LAYOUT, "--algo.kl.init_coef", "0", "--algo.advantage.estimator", "group_norm")
    assert _shape(no_kl) == [(("vLLM",), 2), (("actor",), 4)]  # group_norm: no critic either


def test_colocation_shares_gpus_as_openrlhf_places_them():
    both = _plan(
        "rm",
        *OLD_LAYOUT,
        "--ref.num_gpus_per_node",
        "4",
        "--train.colocate_actor_ref",
        "--train.colocate_critic_reward",
    )
    assert _shape(both) == [(("actor", "ref"), 4), (("vLLM",), 2), (("critic", "reward"), 2)]
    gpu_plan.check_fits(both, nodes=1, gpus_per_node=8)
    everything = _plan(
        "rm",
        "--actor.num_gpus_per_node",
        "8",
        "--ref.num_gpus_per_node",
        "8",
        "--reward.num_gpus_per_node",
        "8",
        "--vllm.num_engines",
        "8",
        "--train.colocate_all",
        "--algo.advantage.estimator",
        "group_norm",
        "--algo.kl.init_coef",
        "0.01",
    )
    assert _shape(everything) == [(("actor", "ref", "vLLM", "reward"), 8)]


def test_a_group_larger_than_a_node_is_refused_naming_it():
    placements = _plan(
        "vote",
        "--actor.num_gpus_per_node",
        "16",
        "--vllm.num_engines",
        "1",
        "--algo.advantage.estimator",
        "group_norm",
        "--algo.kl.init_coef",
        "0",
    )
    with pytest.raises(ValueError, match=r"actor: 16 GPU\(s\) \(1 node\(s\) x 16\) asks for 16 GPUs on one node"):
        gpu_plan.check_fits(placements, nodes=4, gpus_per_node=8)


def test_a_live_ray_cluster_is_checked_by_the_gpus_its_nodes_declare():
    no_kl = ("--algo.kl.init_coef", "0", "--algo.advantage.estimator", "group_norm", "--actor.num_gpus_per_node", "1")
    placements = _plan("vote", "--vllm.num_engines", "2", *no_kl)
    assert gpu_plan.total_gpus(placements) == 3  # 2 engines + the actor
    gpu_plan.check_fits_ray(placements, [1.0, 1.0, 1.0], "127.0.0.1:6379")
    with pytest.raises(ValueError, match=r"the Ray cluster at head:6379 \(2 node\(s\) with 1, 1 GPUs\) has 2;"):
        gpu_plan.check_fits_ray(placements, [1.0, 1.0], "head:6379")
    tensor_parallel = _plan("vote", "--vllm.num_engines", "1", "--vllm.tensor_parallel_size", "2", *no_kl)
    with pytest.raises(ValueError, match=r"vLLM: 2 GPU\(s\) \(1 engine\(s\) x 2\) asks for 2 GPUs on one node"):
        gpu_plan.check_fits_ray(tensor_parallel, [1.0, 1.0, 1.0], "head:6379")


LAYOUTS = {
    "separate": OLD_LAYOUT,
    "actor+ref, critic+reward": [
        *OLD_LAYOUT,
        *("--ref.num_gpus_per_node", "4", "--train.colocate_actor_ref", "--train.colocate_critic_reward"),
    ],
    "hybrid engine (the recipes)": [
        *("--actor.num_gpus_per_node", "8", "--ref.num_gpus_per_node", "8", "--critic.num_gpus_per_node", "8"),
        *("--reward.num_gpus_per_node", "8", "--vllm.num_engines", "8", "--train.colocate_all"),
        *("--vllm.enable_sleep", "--ds.enable_sleep", "--algo.advantage.estimator", "gae"),
        *("--algo.kl.init_coef", "0.01"),
    ],
    "colocate_all, critic+reward apart": [
        *("--actor.num_gpus_per_node", "4", "--ref.num_gpus_per_node", "4", "--vllm.num_engines", "2"),
        *("--vllm.tensor_parallel_size", "2", "--train.colocate_all", "--critic.num_gpus_per_node", "2"),
        *("--reward.num_gpus_per_node", "2", "--train.colocate_critic_reward", "--algo.advantage.estimator", "gae"),
        *("--algo.kl.init_coef", "0.01"),
    ],
    "two nodes": [*OLD_LAYOUT, "--actor.num_nodes", "2", "--critic.num_nodes", "2"],
}


@pytest.mark.parametrize("scheme", ["rm", "vote"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_plan_is_what_openrlhfs_own_train_asks_ray_for(layout, scheme):
    """OpenRLHF's train() run with Ray's placement groups, vLLM engines and actor groups recorded instead of
    created (compat/rehearsal.py): the GPUs it would reserve are the plan's, layout by layout."""
    argv = [*BASE, *(["--reward.model_name_or_path", "/models/rm"] if scheme == "rm" else []), *LAYOUTS[layout]]
    p = ppo.plan(argv, ppo.PPOOptions(scheme=scheme, task="gsm8k", engine="gpu"))
    driver_argv = p.launch.command[p.launch.command.index(ray_driver.__name__) + 1 :]
    namespace, requests = rehearsal.rehearse_ppo(driver_argv)
    assert requests.gpus() == gpu_plan.total_gpus(gpu_plan.plan(namespace)), requests
    assert ("reward" in [g[0] for g in requests.groups]) == (scheme == "rm")  # a reward function: no RM group


@pytest.mark.parametrize(
    "flags, assert_says",
    [
        (["--vllm.num_engines", "2"], r"must be equal to vllm_num_engines \* vllm_tensor_parallel_size"),
        (["--ref.num_gpus_per_node", "4"], "colocate actor and ref model"),
        (["--train.colocate_critic_reward", "--reward.num_gpus_per_node", "4"], "colocate critic and reward model"),
    ],
)
def test_openrlhfs_layout_asserts_refuse_the_command_before_anything_starts(flags, assert_says):
    """The three asserts OpenRLHF's train() makes on a layout, which its parser alone lets through."""
    hybrid = LAYOUTS["hybrid engine (the recipes)"]
    argv = [*BASE, "--reward.model_name_or_path", "/models/rm", *hybrid, *flags]
    with pytest.raises(ray_driver.PPOArgumentsRejected, match=assert_says):
        ppo.validate(ppo.plan(argv, ppo.PPOOptions(scheme="rm", task="gsm8k", engine="gpu")))
