"""A RewardModelTrainer that adds a pointwise term: loss = pairwise_coef * BT(chosen, rejected) + pointwise_coef *
BCE(sigmoid(r), label), over rm_pairs.jsonl and rm_points.jsonl (docs/rewards.md).

Built on OpenRLHF's trainer rather than copied from it: its ``fit`` and ``evaluate`` run unchanged. Three hooks:
- the pairs dataloader is wrapped so that each pairs batch also queues the next points batch (pairs drive the
  epoch, points cycle alongside);
- ``concatenated_forward`` scores chosen, rejected and the queued points in one forward pass;
- ``loss_fn`` adds the pointwise term when points were scored (``evaluate`` scores none: its loss, and the
  mean/std it stores in the checkpoint for reward normalisation, stay OpenRLHF's).
Points are tokenised by OpenRLHF's own RewardDataset (response in both slots, label in the margin slot), so a
point is formatted exactly like a pair's response.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

import torch
import torch.nn.functional as F
from openrlhf.datasets import RewardDataset
from openrlhf.datasets.utils import blending_datasets
from openrlhf.trainer.rm_trainer import RewardModelTrainer


def add_distill_arguments(parser) -> None:
    parser.add_argument("--distill.rm.points", type=str, default=None, help="rm_points.jsonl (labelled responses)")
    parser.add_argument("--distill.rm.pairwise_coef", type=float, default=1.0)
    parser.add_argument("--distill.rm.pointwise_coef", type=float, default=1.0)
    parser.add_argument(
        "--distill.rm.points_micro_batch_size",
        type=int,
        default=None,
        help="points per step (default: --train.micro_batch_size)",
    )
    parser.add_argument("--distill.rm.metrics_file", type=str, default=None, help="per-step metrics (JSON Lines)")


def points_dataset(path: str, tokenizer, strategy) -> RewardDataset:
    args = strategy.args
    raw = blending_datasets(path, None, strategy, dataset_split=args.data.dataset_split)
    raw = raw.map(
        lambda row: {
            args.data.chosen_key: row["response"],
            args.data.rejected_key: row["response"],
            "margin": float(row["label"]),
        }
    )
    return RewardDataset(
        raw,
        tokenizer,
        args.data.max_len,
        strategy,
        input_template=args.data.input_template,
        num_processors=min(8, os.cpu_count() or 1),
    )


class PairsDrivePoints:
    """The pairs dataloader as ``fit`` sees it (sampler, len, iteration); every pairs batch also hands the
    trainer the next batch of points, cycling through them."""

    def __init__(self, pairs, points, trainer):
        self.pairs, self.trainer, self.sampler = pairs, trainer, pairs.sampler
        if points is not None and len(points) == 0:
            raise ValueError(f"fewer points than one points batch ({points.batch_size}): nothing to train on")
        self._points = self._cycle(points) if points is not None else None

    def __len__(self):
        return len(self.pairs)

    @staticmethod
    def _cycle(points):
        while True:
            yield from points

    def __iter__(self):
        for batch in self.pairs:
            self.trainer.queued_points = next(self._points) if self._points else None
            yield batch


def pair_point_loss(pairwise_loss, pairwise_coef, pointwise_coef, chosen, rejected, margin, point_rewards, labels):
    """The combined loss and its parts. ``binary_cross_entropy_with_logits(r, y)`` is BCE(sigmoid(r), y), and
    takes soft labels (a judge's score / 10)."""
    pair = pairwise_loss(chosen, rejected, margin)
    point = F.binary_cross_entropy_with_logits(point_rewards.float(), labels)
    return pairwise_coef * pair + pointwise_coef * point, pair, point


class PairPointLoss(torch.nn.Module):
    def __init__(self, pairwise_loss, trainer, pairwise_coef: float, pointwise_coef: float):
        super().__init__()
        self.pairwise_loss, self.pairwise_coef, self.pointwise_coef = pairwise_loss, pairwise_coef, pointwise_coef
        self._trainer = [trainer]  # a list: not registered as a submodule

    def forward(self, chosen, rejected, margin=None):
        trainer = self._trainer[0]
        scored, trainer.scored_points = trainer.scored_points, None
        if scored is None:  # evaluate(): OpenRLHF's own pairwise loss
            return self.pairwise_loss(chosen, rejected, margin)
        rewards, labels = scored
        loss, pair, point = pair_point_loss(
            self.pairwise_loss, self.pairwise_coef, self.pointwise_coef, chosen, rejected, margin, rewards, labels
        )
        trainer.record(
            pairwise_loss=pair.item(),
            pointwise_loss=point.item(),
            pointwise_acc=((rewards > 0) == (labels >= 0.5)).float().mean().item(),
        )
        for name, chosen_rows in (("reward_label1", labels >= 0.5), ("reward_label0", labels < 0.5)):
            if chosen_rows.any():
                trainer.record(**{name: rewards[chosen_rows].float().mean().item()})
        return loss


def refuse_the_stock_trainer(stock: type) -> None:
    """Makes OpenRLHF's own RewardModelTrainer refuse to be built in this process (its subclass, ours, still
    builds). train.py swaps the trainer class in before train_rm imports it; if an OpenRLHF release imports it
    another way, train_rm would build the stock trainer and train without the pointwise term, silently."""
    original_init = stock.__init__

    def init(self, *args, **kwargs):
        if type(self) is stock:
            raise RuntimeError(
                "openrlhf.cli.train_rm built OpenRLHF's own RewardModelTrainer instead of openrlhf-distill's: the "
                "trainer swap in openrlhf_distill/reward_model/train.py did not take effect with this OpenRLHF "
                "(does train_rm import its trainer differently?), and the pointwise loss would be missing"
            )
        original_init(self, *args, **kwargs)

    stock.__init__ = init


class DistillRewardModelTrainer(RewardModelTrainer):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = self.args.distill.rm
        self.queued_points = self.scored_points = None
        self._sums, self._counts = defaultdict(float), defaultdict(int)
        points = None
        if options.points and options.pointwise_coef > 0:
            dataset = points_dataset(options.points, self.tokenizer, self.strategy)
            batch = options.points_micro_batch_size or self.args.train.micro_batch_size
            points = self.strategy.setup_dataloader(dataset, batch, True, True, dataset.collate_fn)
        self.train_dataloader = PairsDrivePoints(self.train_dataloader, points, self)
        self.loss_fn = PairPointLoss(self.loss_fn, self, options.pairwise_coef, options.pointwise_coef)
        # The marker that this trainer, not OpenRLHF's, is the one training (tests and users can look for it).
        self.strategy.print(
            f"[openrlhf-distill] distilled RM trainer: pairwise x{options.pairwise_coef}, pointwise "
            f"x{options.pointwise_coef} on {len(points.dataset) if points else 0} points"
        )

    def record(self, **values) -> None:
        for key, value in values.items():
            self._sums[key] += value
            self._counts[key] += 1

    def concatenated_forward(self, model, chosen_ids, c_mask, reject_ids, r_mask):
        points, self.queued_points = self.queued_points, None
        if points is None:
            return super().concatenated_forward(model, chosen_ids, c_mask, reject_ids, r_mask)
        point_ids, point_mask, _, _, labels = points  # RewardDataset's batch; labels rode in the margin slot
        ids, mask = self.concatenated_inputs(chosen_ids, c_mask, reject_ids, r_mask)
        ids, mask = self.concatenated_inputs(ids, mask, point_ids.to(ids.device), point_mask.to(ids.device))
        values, output = model(
            ids, attention_mask=mask, return_output=True, ring_attn_group=self.strategy.ring_attn_group
        )
        n_chosen, n_pairs = chosen_ids.shape[0], chosen_ids.shape[0] + reject_ids.shape[0]
        self.scored_points = (values[n_pairs:], torch.tensor(labels, dtype=torch.float32, device=values.device))
        aux_loss = output.aux_loss if "aux_loss" in output else []
        return values[:n_chosen], values[n_chosen:n_pairs], aux_loss

    def save_logs_and_checkpoints(self, args, global_step, step_bar, logs_dict=None, client_states=None):
        if logs_dict is not None:
            if self._counts:  # our pointwise terms, beside OpenRLHF's pairwise loss/acc
                means = {key: self._sums[key] / self._counts[key] for key in self._sums}
                logs_dict.update(self.strategy.all_reduce(means))
                self._sums.clear()
                self._counts.clear()
            if self.strategy.is_rank_0() and args.distill.rm.metrics_file:
                # Every logged step, pointwise term or not (a pairs-only run logs OpenRLHF's values alone).
                with open(args.distill.rm.metrics_file, "a") as f:
                    f.write(json.dumps({"global_step": global_step, **logs_dict}) + "\n")
        super().save_logs_and_checkpoints(args, global_step, step_bar, logs_dict, client_states)
