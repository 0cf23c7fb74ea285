"""Entry point of the distilled RM trainer: OpenRLHF's own ``openrlhf.cli.train_rm``, run as ``__main__`` with
:class:`~openrlhf_distill.reward_model.trainer.DistillRewardModelTrainer` in place of its RewardModelTrainer and
``--distill.rm.*`` flags added to its parser. Every train_rm flag, default and check stays OpenRLHF's, and the
checkpoint is an ordinary OpenRLHF RM (value_head_prefix, mean and std in config.json).

    deepspeed --module openrlhf_distill.reward_model.train <train_rm flags> --distill.rm.points rm_points.jsonl
    openrlhf-distill train-rm ...   (the same, through the adapter: deepspeed on GPUs, one process on a CPU)
"""

from __future__ import annotations

import argparse
import runpy
import sys


def main() -> None:
    from openrlhf_distill.compat import boot_install, check_openrlhf

    check_openrlhf()
    boot_install()  # idempotent: the boot hook may have done it already
    import openrlhf.trainer.rm_trainer as rm_trainer

    from ..compat.launch import report_input_error
    from ..records import RecordError
    from .data import prepare
    from .trainer import DistillRewardModelTrainer, add_distill_arguments, refuse_the_stock_trainer

    refuse_the_stock_trainer(rm_trainer.RewardModelTrainer)  # a swap that did not take effect fails loudly
    rm_trainer.RewardModelTrainer = DistillRewardModelTrainer  # train_rm binds the name when it is imported below
    original_parse_args = argparse.ArgumentParser.parse_args

    def parse_args(self, args=None, namespace=None):
        argparse.ArgumentParser.parse_args = original_parse_args  # only train_rm's own parser is extended
        add_distill_arguments(self)
        parsed = original_parse_args(self, args, namespace)
        try:
            prepare(parsed)
        except (RecordError, ValueError) as error:  # bad input: one line for the user, not a traceback
            report_input_error(error)
        return parsed

    argparse.ArgumentParser.parse_args = parse_args
    sys.argv[0] = "openrlhf.cli.train_rm"
    runpy.run_module("openrlhf.cli.train_rm", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
