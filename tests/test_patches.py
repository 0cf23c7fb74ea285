"""The runtime patch mechanism: what it changes, where it reaches, and that it stands aside when it should."""

import os
import textwrap

from openrlhf_distill.compat import patches

# Every test here runs its code in a fresh interpreter (the run_python fixture): the patches act at start-up.


def _env(**extra) -> dict:
    env = patches.subprocess_env()
    env.pop(patches.ENV_SKIP, None)
    env.update(extra)
    return env


def test_openrlhf_models_import_on_cpu_through_the_flash_attn_stand_in(run_python):
    code = textwrap.dedent(
        """
        import openrlhf.models, openrlhf.trainer.sft_trainer  # import flash_attn at module top
        import flash_attn.bert_padding as bp
        from transformers.utils import is_flash_attn_2_available
        assert not is_flash_attn_2_available(), "transformers must not think flash-attn is usable"
        try:
            bp.unpad_input(None, None)
        except RuntimeError as e:
            print("CALL:", e)
        try:
            from flash_attn.ops.triton.cross_entropy import cross_entropy_loss  # OpenRLHF falls back on ImportError
        except ImportError:
            print("OPTIONAL: ImportError")
        """
    )
    result = run_python(code, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CALL: flash-attn is not installed" in result.stdout and "--ds.packing_samples" in result.stdout
    assert "OPTIONAL: ImportError" in result.stdout


def test_without_the_stand_in_openrlhf_models_do_not_import(run_python):
    # The failure the stand-in exists for: proves the test above is not passing by accident.
    result = run_python("import openrlhf.models", env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode != 0
    assert "flash_attn" in result.stderr


def test_patches_reach_a_spawned_grandchild_process(run_python):
    # vLLM's engine processes and Ray workers are started with "spawn", fresh interpreters: the patches must
    # come from interpreter start-up, not from whatever the parent imported.
    code = textwrap.dedent(
        """
        import multiprocessing as mp

        def report(queue):
            import torch
            from openrlhf_distill.compat import patches
            queue.put((str(torch.cuda.current_device()), list(patches.applied)))

        if __name__ == "__main__":
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            child = ctx.Process(target=report, args=(queue,))
            child.start()
            print("CHILD", queue.get(timeout=120))
            child.join()
        """
    )
    result = run_python(code, env=_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert "CHILD ('cpu', ['torch_cuda_to_cpu', 'device_mesh_on_cpu'])" in result.stdout


def test_skip_list_and_off_switch_leave_torch_cuda_alone(run_python):
    code = textwrap.dedent(
        """
        import torch
        from openrlhf_distill.compat import patches
        try:
            torch.cuda.current_device()
            print("CUDA CALL PATCHED")
        except Exception:
            print("CUDA CALL RAISES")
        print("APPLIED", patches.applied)
        """
    )
    skipped = run_python(code, env=_env(**{patches.ENV_SKIP: "torch_cuda_to_cpu"}))
    assert "CUDA CALL RAISES" in skipped.stdout and "APPLIED ['device_mesh_on_cpu']" in skipped.stdout, skipped.stderr
    off = run_python(code, env=_env(**{patches.ENV_MODE: "off"}))
    assert "CUDA CALL RAISES" in off.stdout and "APPLIED []" in off.stdout, off.stderr[-2000:]
    on = run_python(code, env=_env())
    assert "CUDA CALL PATCHED" in on.stdout, on.stderr[-2000:]


def test_on_a_cuda_machine_cpu_patches_stand_aside_and_fixes_still_apply(run_python):
    # Test double for a GPU machine (none here): torch.cuda.is_available answers True while the torch patches
    # are decided, and is restored before OpenRLHF is imported (bitsandbytes cannot import on a fake CUDA).
    code = textwrap.dedent(
        """
        from openrlhf_distill.compat import flash_attn_stub
        flash_attn_stub.install()
        import torch
        real_is_available = torch.cuda.is_available
        torch.cuda.is_available = lambda: True
        original = (torch.cuda.set_device, torch.cuda.current_device, torch.cuda.synchronize)
        from openrlhf_distill.compat import patches
        patches.install()
        torch.cuda.is_available = real_is_available
        assert (torch.cuda.set_device, torch.cuda.current_device, torch.cuda.synchronize) == original
        import openrlhf.models.model
        print("APPLIED", patches.applied)
        """
    )
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", patches.ENV_ENGINE)}  # no launcher
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "APPLIED ['reward_mean_std_from_config']" in result.stdout


def test_cpu_patches_follow_the_declared_engine_not_whether_cuda_is_visible(run_python):
    # Ray gives the GPU-less actors of a GPU run (PPO's controller, vLLM actors with tensor parallelism)
    # CUDA_VISIBLE_DEVICES="": such a process sees no CUDA, yet it belongs to a GPU run and must not be patched
    # for the CPU. The launcher declares the engine; only an undeclared process probes, and records the answer.
    code = textwrap.dedent(
        """
        import os
        from openrlhf_distill.compat import flash_attn_stub, patches
        flash_attn_stub.install()
        patches.install()
        import openrlhf.models.model, torch
        print("CUDA", torch.cuda.is_available(), "ENGINE", os.environ.get(patches.ENV_ENGINE))
        print("CPU PATCHES", sorted(p.name for p in patches.PATCHES if p.group == "cpu" and p.name in patches.applied))
        """
    )
    base = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", patches.ENV_ENGINE)}
    outputs = {}
    for declared in ("gpu", "cpu", None):
        env = {**base, "CUDA_VISIBLE_DEVICES": "", **({patches.ENV_ENGINE: declared} if declared else {})}
        result = run_python(code, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[declared] = result.stdout
    assert "CUDA False ENGINE gpu" in outputs["gpu"] and "CPU PATCHES []" in outputs["gpu"]
    assert "CUDA False ENGINE cpu" in outputs["cpu"] and "CPU PATCHES []" not in outputs["cpu"]
    assert "ENGINE cpu" in outputs[None] and "CPU PATCHES []" not in outputs[None]  # probed, then recorded
    assert patches.subprocess_env({}, engine="gpu")[patches.ENV_ENGINE] == "gpu"


def test_boot_hook_chains_to_the_sitecustomize_it_shadows(run_python, tmp_path):
    (tmp_path / "sitecustomize.py").write_text("import builtins\nbuiltins.OTHER_SITECUSTOMIZE_RAN = True\n")
    env = _env()
    env["PYTHONPATH"] = env["PYTHONPATH"] + os.pathsep + str(tmp_path)
    code = "import builtins, sys; print('CHAINED', getattr(builtins, 'OTHER_SITECUSTOMIZE_RAN', False))"
    result = run_python(code, env=env)
    assert "CHAINED True" in result.stdout, result.stderr[-2000:]


def test_ppo_patches_are_cpu_only_and_reach_their_modules(run_python):
    # On a GPU machine the cpu group stands aside (test above); here, on the CPU, every PPO patch lands on the
    # module OpenRLHF really uses, including the name ppo_actor binds at import.
    code = textwrap.dedent(
        """
        from openrlhf_distill.compat import boot_install, patches, rl_cpu_patches
        boot_install()
        import openrlhf.trainer.ray.ppo_actor as ppo_actor
        import openrlhf.trainer.ray.vllm_worker_wrap as worker_wrap
        import openrlhf.utils.distributed_util as distributed_util
        import openrlhf.trainer.ppo_utils.replay_buffer as replay_buffer
        import torch
        assert ppo_actor.stateless_init_process_group is rl_cpu_patches.gloo_weight_sync_group
        assert distributed_util.stateless_init_process_group is rl_cpu_patches.gloo_weight_sync_group
        assert worker_wrap.WorkerWrap.update_weight.__module__ == rl_cpu_patches.__name__
        buffer = replay_buffer.NaiveReplayBuffer(sample_batch_size=2)
        assert buffer.target_device == torch.device("cpu")
        groups = {p.name: p.group for p in patches.PATCHES}
        print("GROUPS", sorted({groups[n] for n in ("replay_buffer_on_cpu", "weight_sync_gloo",
              "weight_sync_gloo_actor", "vllm_cpu_weight_reload")}))
        """
    )
    result = run_python(code, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "GROUPS ['cpu']" in result.stdout


def test_gloo_weight_broadcast_carries_dtypes_gloo_refuses(run_python):
    # The byte view: int16 and bf16 tensors arrive bit for bit between two processes over the gloo group.
    code = textwrap.dedent(
        """
        import multiprocessing as mp, socket
        def receive(port, queue):
            import torch
            from openrlhf_distill.compat.rl_cpu_patches import gloo_weight_sync_group
            group = gloo_weight_sync_group("127.0.0.1", port, 1, 2)
            got = [torch.empty(5, dtype=torch.int16), torch.empty(2, 3, dtype=torch.bfloat16)]
            for t in got:
                group.broadcast(t, src=0)
            queue.put([t.float().tolist() for t in got])
        if __name__ == "__main__":
            import torch
            from openrlhf_distill.compat.rl_cpu_patches import gloo_weight_sync_group
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
            queue = mp.get_context("spawn").Queue()
            child = mp.get_context("spawn").Process(target=receive, args=(port, queue)); child.start()
            group = gloo_weight_sync_group("127.0.0.1", port, 0, 2)
            sent = [torch.arange(5, dtype=torch.int16) * 300, torch.randn(2, 3).to(torch.bfloat16)]
            for t in sent:
                group.broadcast(t, src=0)
            assert queue.get(timeout=60) == [t.float().tolist() for t in sent]
            child.join(); print("SAME")
        """
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "SAME" in result.stdout


def test_known_harmless_warnings_are_filtered_in_the_processes_a_run_starts_and_only_those(run_python):
    code = "import warnings, torch.cuda\nwarnings.warn('The pynvml package is deprecated, or so we say', UserWarning)"
    bare = run_python(code, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert "FutureWarning: The pynvml package is deprecated" in bare.stderr  # the warning the filter exists for
    quiet = run_python(code, env=patches.subprocess_env())
    assert quiet.returncode == 0, quiet.stderr
    assert "FutureWarning: The pynvml package is deprecated" not in quiet.stderr
    assert "UserWarning: The pynvml package is deprecated, or so we say" in quiet.stderr  # same words, other kind


def test_the_rm_normalisation_fix_reaches_code_that_imported_openrlhf_models_before_the_patches(run_python):
    # `from openrlhf.models import get_llm_for_sequence_regression` reads the package's copy of the name; a
    # process that imported openrlhf.models before the patches were installed (here: no boot hook) kept the
    # unfixed loader there, and RMs it loaded normalised their rewards with uninitialised memory (seen as rewards
    # of 1e21 or inf in a test run whose order put such an import first).
    code = textwrap.dedent(
        """
        from openrlhf_distill.compat import boot_install, flash_attn_stub
        flash_attn_stub.install()
        import openrlhf.models
        unfixed = openrlhf.models.get_llm_for_sequence_regression
        boot_install()
        import openrlhf.models.model as module
        from openrlhf.models import get_llm_for_sequence_regression
        print("PACKAGE FIXED", get_llm_for_sequence_regression is module.get_llm_for_sequence_regression)
        print("WRAPS THE ORIGINAL", get_llm_for_sequence_regression.__wrapped__ is unfixed)
        """
    )
    env = {k: v for k, v in _env().items() if k != "PYTHONPATH"}
    result = run_python(code, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "PACKAGE FIXED True" in result.stdout and "WRAPS THE ORIGINAL True" in result.stdout


def test_harmless_log_lines_are_dropped_with_a_reason_each_and_the_docs_list_them_all(caplog):
    import logging

    from openrlhf_distill.compat import quiet

    quiet.quiet_harmless_warnings()
    quiet.quiet_harmless_warnings()  # twice, as a process that imports twice: one filter per line kind
    logger = logging.getLogger("bitsandbytes.backends.cpu.ops")
    assert sum(isinstance(f, quiet._DropLines) for f in logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger=logger.name):
        logger.warning("Failed to load CPU gemm_4bit_forward from kernels-community: %s", "No module")
        logger.warning("Failed to load something else")
    assert [r.getMessage() for r in caplog.records] == ["Failed to load something else"]
    docs = open(os.path.join(os.path.dirname(__file__), "..", "docs", "commands.md")).read()
    for _, start, why in (*quiet.HARMLESS, *quiet.HARMLESS_LOGS):
        assert why and start in docs, start
