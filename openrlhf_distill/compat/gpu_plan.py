"""The GPUs a PPO run asks Ray for, computed from its flags as OpenRLHF 0.11.2's ``train_ppo_ray.train`` places
its groups, and checked against the cluster the run is declared for.

OpenRLHF waits on its placement groups with no timeout: a run that asks for more GPUs than the cluster has
does not fail, it hangs (after the teacher sampling, SFT and RM stages of a pipeline have run for days). This
is the check that fails it at once, naming the group that is short and what would fit.

How train_ppo_ray places its groups (0.11.2), which :func:`plan` follows step by step:

- ``--train.colocate_actor_ref`` or ``--train.colocate_all``: one placement group of actor GPUs
  (``actor.num_nodes x actor.num_gpus_per_node``) shared by the actor and, with a KL term, the reference model;
  with ``colocate_all`` (and not ``--train.async_enable``) the vLLM engines join it too;
- otherwise vLLM takes ``vllm.num_engines x vllm.tensor_parallel_size`` GPUs of its own, and the actor and the
  reference model (only when ``--algo.kl.init_coef`` > 0) each ``num_nodes x num_gpus_per_node``;
- a critic exists only with the ``gae`` estimator; ``--train.colocate_critic_reward`` puts critic and reward
  model in one placement group of critic GPUs; with ``colocate_all`` and no such group they join the actor's;
- the reward model group exists only without ``--reward.remote_url`` (every scheme but rm and judge passes a
  reward function instead).
"""

from __future__ import annotations

from dataclasses import dataclass

from ..argtypes import int_at_least
from ..settings import setting
from .flags import parsed_value


@dataclass(frozen=True)
class ClusterSettings:
    """The GPU cluster a run is declared for: `ppo`'s --distill.cluster.* and the run config's `cluster`."""

    nodes: int | None = setting(
        None,
        "the GPU cluster the run is for: with gpus_per_node, a GPU plan that does not fit is refused before Ray "
        "starts (OpenRLHF would wait for ever)",
        check=int_at_least(1),
    )
    gpus_per_node: int | None = setting(None, "GPUs on each of its nodes", check=int_at_least(1))
    autoscaling: bool = setting(
        False,
        "the Ray cluster adds nodes on demand: the driver does not refuse a GPU plan larger than the nodes it has "
        "when the run starts",
    )


@dataclass(frozen=True)
class Placement:
    """GPUs reserved together: ``members`` share them (one group alone, or colocated groups). They come in
    ``units`` (a group's nodes, or vLLM's engines) of ``gpus_per_unit`` GPUs, each unit on one node."""

    members: tuple[str, ...]
    units: int
    gpus_per_unit: int
    unit: str = "node"

    @property
    def gpus(self) -> int:
        return self.units * self.gpus_per_unit

    def describe(self) -> str:
        return f"{' + '.join(self.members)}: {self.gpus} GPU(s) ({self.units} {self.unit}(s) x {self.gpus_per_unit})"


def _group(namespace, name: str) -> tuple[int, int]:
    return parsed_value(namespace, f"{name}.num_nodes"), parsed_value(namespace, f"{name}.num_gpus_per_node")


def plan(namespace) -> list[Placement]:
    """The placements of a run, from train_ppo_ray's parsed arguments (what ``ray_driver.validate`` returns)."""
    colocate_all = parsed_value(namespace, "train.colocate_all")
    vllm_with_actor = colocate_all and not parsed_value(namespace, "train.async_enable")
    kl = parsed_value(namespace, "algo.kl.init_coef") > 0
    engines = parsed_value(namespace, "vllm.num_engines") or 0
    critic = bool(parsed_value(namespace, "critic.model_name_or_path"))
    reward = not parsed_value(namespace, "reward.remote_url")

    placements: list[Placement] = []
    shared: list[str] | None = None  # the members of the placement group the next groups join, if any
    if parsed_value(namespace, "train.colocate_actor_ref") or colocate_all:
        shared = ["actor"] + (["ref"] if kl else []) + (["vLLM"] if engines and vllm_with_actor else [])
        placements.append(Placement(tuple(shared), *_group(namespace, "actor")))
    if engines and not vllm_with_actor:
        tensor_parallel = parsed_value(namespace, "vllm.tensor_parallel_size")
        placements.append(Placement(("vLLM",), engines, tensor_parallel, "engine"))
    if shared is None:
        placements.append(Placement(("actor",), *_group(namespace, "actor")))
        if kl:
            placements.append(Placement(("ref",), *_group(namespace, "ref")))
    # The second half of train(): the actor's group is dropped unless colocate_all; critic + reward may get one.
    joins_actor = colocate_all
    if critic and parsed_value(namespace, "train.colocate_critic_reward"):
        members = ("critic", "reward") if reward else ("critic",)
        placements.append(Placement(members, *_group(namespace, "critic")))
    elif joins_actor:
        first = placements[0]
        placements[0] = Placement(
            first.members + ("critic",) * critic + ("reward",) * reward, first.units, first.gpus_per_unit
        )
    else:
        if critic:
            placements.append(Placement(("critic",), *_group(namespace, "critic")))
        if reward:
            placements.append(Placement(("reward",), *_group(namespace, "reward")))
    return placements


def total_gpus(placements: list[Placement]) -> int:
    return sum(p.gpus for p in placements)


def describe(placements: list[Placement]) -> str:
    lines = [f"  {p.describe()}" for p in placements]
    return (
        "GPU plan (as OpenRLHF 0.11.2 places the groups):\n"
        + "\n".join(lines)
        + f"\n  total: {total_gpus(placements)}"
    )


def check_fits(placements: list[Placement], nodes: int, gpus_per_node: int) -> None:
    """Refuses a plan that cannot be placed on ``nodes x gpus_per_node`` GPUs, naming the group that does not fit
    and the changes that would."""
    _check(placements, [gpus_per_node] * nodes, f"the cluster ({nodes} node(s) x {gpus_per_node} GPUs)")


def check_fits_ray(placements: list[Placement], gpus_by_node: list[float], address: str) -> None:
    """The same check against a running Ray's nodes (``gpus_by_node``: each alive node's GPUs, as Ray counts
    them), made by the driver once it has joined: what the nodes declare, not what is free now."""
    counts = ", ".join(f"{g:g}" for g in gpus_by_node)
    _check(
        placements,
        [int(g) for g in gpus_by_node],
        f"the Ray cluster at {address} ({len(gpus_by_node)} node(s) with {counts} GPUs)",
    )


def _check(placements: list[Placement], gpus_by_node: list[int], cluster: str) -> None:
    largest_node = max(gpus_by_node, default=0)
    for p in placements:
        if p.gpus_per_unit > largest_node:
            raise ValueError(
                f"the GPU plan does not fit {cluster}: {p.describe()} asks for {p.gpus_per_unit} GPUs on one node"
            )
    need, capacity = total_gpus(placements), sum(gpus_by_node)
    if need <= capacity:
        return
    largest = max(placements, key=lambda p: p.gpus)
    hints = []
    names = {m for p in placements for m in p.members}
    if "ref" in names and not any({"actor", "ref"} <= set(p.members) for p in placements):
        hints.append("--train.colocate_actor_ref (actor and ref share the actor's GPUs)")
    if {"critic", "reward"} <= names and not any({"critic", "reward"} <= set(p.members) for p in placements):
        hints.append("--train.colocate_critic_reward (critic and reward share the critic's GPUs)")
    hints.append(f"fewer GPUs for {largest.members[0]} (its num_gpus_per_node)")
    raise ValueError(
        f"the GPU plan needs {need} GPUs, {cluster} has {capacity}; OpenRLHF would wait for the missing "
        f"{need - capacity} for ever. Plan: "
        + "; ".join(p.describe() for p in placements)
        + ". To fit: "
        + ", or ".join(hints)
    )
