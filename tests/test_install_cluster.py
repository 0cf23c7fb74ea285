"""scripts/install_cluster.sh, the GPU-cluster install: its steps come in the one order that works on a fresh
machine (torch, flash-attn's build helpers, flash-attn against that torch, the package, doctor), the dry run prints
the commands the script runs, and every pin of requirements/cluster.txt is the one its source requires.

The script runs here against a stand-in Python that records its pip commands, and against stand-in nvidia-smi and
nvcc, so no test installs anything or needs a GPU. The pin checks read the live indexes and skip when they are
unreachable; they read PEP 658 metadata files (kilobytes) rather than running `pip install --dry-run`, because an
index that does not advertise those files (this machine's does not) makes pip download each whole wheel instead
(316 MB for vllm).
"""

import ast
import email.parser
import functools
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile

import pytest
from packaging.requirements import Requirement
from packaging.tags import sys_tags
from packaging.utils import canonicalize_name, parse_wheel_filename

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "install_cluster.sh")
PINS_FILE = os.path.join(REPO, "requirements", "cluster.txt")
PYPI = "https://pypi.org/simple"
PYTORCH_INDEX = "https://download.pytorch.org/whl"
STEP = re.compile(r"^\[install-cluster (\d+)/(\d+)\] (.*)$")
PIP_INSTALL = ["-m", "pip", "install"]


def _pins() -> dict[str, str]:
    """requirements/cluster.txt as name -> the version after == (a +cuXYZ label included)."""
    pins = {}
    with open(PINS_FILE) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                requirement = Requirement(line)
                (spec,) = requirement.specifier
                assert spec.operator == "==", f"{line}: requirements/cluster.txt holds exact pins only"
                pins[requirement.name] = spec.version
    return pins


def _torch_build() -> tuple[str, str]:
    """The torch pin as (version, CUDA build): 2.13.0+cu130 -> ("2.13.0", "cu130")."""
    version, _, build = _pins()["torch"].partition("+")
    return version, build


def _fake_machine(tmp_path, driver: str | None, nvcc: str | None) -> dict:
    """Environment variables for a machine whose driver supports CUDA `driver` and whose nvcc is CUDA `nvcc`
    (None: no driver, no nvcc), whatever this machine has: stand-ins lead PATH and CUDA_HOME names theirs."""
    bin_dir, cuda_home = tmp_path / "bin", tmp_path / "cuda"
    (cuda_home / "bin").mkdir(parents=True)
    bin_dir.mkdir()
    smi = bin_dir / "nvidia-smi"
    if driver:  # the header line the script reads, as nvidia-smi prints it
        smi.write_text(
            f"#!/bin/sh\necho '| NVIDIA-SMI 580.82.07   Driver Version: 580.82.07   CUDA Version: {driver} |'\n"
        )
    else:  # what nvidia-smi says on a machine with the tool installed and no driver loaded
        smi.write_text(
            "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver.'\nexit 9\n"
        )
    if nvcc:
        (cuda_home / "bin" / "nvcc").write_text(
            f"#!/bin/sh\necho 'Cuda compilation tools, release {nvcc}, V{nvcc}.88'\n"
        )
    for tool in (smi, cuda_home / "bin" / "nvcc"):
        if tool.exists():
            tool.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "CUDA_PATH"}
    return {**env, "PATH": f"{bin_dir}{os.pathsep}{env['PATH']}", "CUDA_HOME": str(cuda_home)}


def _recording_python(tmp_path, installed: str) -> tuple[str, str]:
    """A stand-in interpreter that records every `-m` command (pip, doctor) instead of running it, answers the
    script's installed-versions query with `installed`, and runs its other `-c` queries with this Python.
    Returns (its path, the file of records)."""
    log = tmp_path / "commands.jsonl"
    stub = tmp_path / "python"
    stub.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "args = sys.argv[1:]\n"
        "if args[:1] == ['-c']:\n"
        "    if 'importlib.metadata' in args[1]:\n"
        f"        print({installed!r})\n"
        "        sys.exit(0)\n"
        f"    os.execv({sys.executable!r}, [{sys.executable!r}, *args])\n"
        "record = {'argv': args}\n"
        "if '-c' in args:  # pip's constraints file: gone once the script exits\n"
        "    record['constraints'] = open(args[args.index('-c') + 1]).read()\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(json.dumps(record) + '\\n')\n"
    )
    stub.chmod(0o755)
    return str(stub), str(log)


def _run_script(*args: str, env: dict, python: str = sys.executable) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", SCRIPT, *args], env={**env, "PYTHON": python}, capture_output=True, text=True, timeout=60
    )


def _steps(stdout: str) -> list[tuple[str, list[list[str]]]]:
    """The numbered steps of the script's output: (header, the commands printed under it, as argument lists)."""
    steps = []
    for line in stdout.splitlines():
        if match := STEP.match(line):
            assert int(match.group(1)) == len(steps) + 1, f"steps out of order: {line}"
            steps.append((match.group(3), []))
        elif line.startswith("+ "):
            assert steps, f"a command before the first step: {line}"
            steps[-1][1].append(shlex.split(line[2:]))
    return steps


def _without_constraints_path(command: list[str]) -> list[str]:
    """The constraints file is a fresh temporary file on each run: compare the commands without its path."""
    if "-c" in command[1:]:
        command = list(command)
        command[command.index("-c", 1) + 1] = "<constraints>"
    return command


def test_the_dry_run_prints_torch_then_build_helpers_then_flash_attn_then_the_package_then_doctor(tmp_path):
    pins, (torch, build) = _pins(), _torch_build()
    result = _run_script("--dry-run", env=_fake_machine(tmp_path, driver="13.0", nvcc="13.0"))
    assert result.returncode == 0, result.stderr
    steps = _steps(result.stdout)
    assert len(steps) == 5 and all(len(commands) == 1 for _, commands in steps), result.stdout
    (torch_step, [torch_cmd]), (helpers_step, [helpers_cmd]), (fa_step, [fa_cmd]), (pkg_step, [pkg_cmd]) = steps[:4]
    py = sys.executable
    index = f"{PYTORCH_INDEX}/{build}"

    assert torch_step.startswith(f"torch=={torch} for {build} from {index}")
    assert torch_cmd == [
        py, *PIP_INSTALL, f"torch=={torch}+{build}", f"torchvision=={pins['torchvision']}", "--index-url", index
    ]  # fmt: skip
    # flash-attn's setup.py imports packaging, wheel, setuptools and psutil, and builds with ninja
    assert helpers_cmd[:4] == [py, *PIP_INSTALL]
    assert {"packaging", "psutil", "ninja", "wheel", "setuptools"} <= set(helpers_cmd[4:])
    assert fa_step.startswith(f"flash-attn=={pins['flash-attn']}")
    assert fa_cmd == [py, *PIP_INSTALL, f"flash-attn=={pins['flash-attn']}", "--no-build-isolation"]
    assert pkg_step.startswith("openrlhf-distill[cluster]")
    assert _without_constraints_path(pkg_cmd) == [py, *PIP_INSTALL, "-c", "<constraints>", f"{REPO}[cluster]"]

    doctor_step, [doctor_cmd] = steps[4]
    assert doctor_step.startswith("openrlhf-distill doctor")
    assert doctor_cmd == [py, "-m", "openrlhf_distill.cli", "doctor"]
    import tomllib  # 3.11+, like the suite

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:  # the same program as the console script
        assert tomllib.load(f)["project"]["scripts"]["openrlhf-distill"] == "openrlhf_distill.cli:main"
    assert "nothing is installed" in result.stdout


def test_the_commands_the_dry_run_prints_are_the_commands_the_script_runs(tmp_path):
    pins = _pins()
    env = _fake_machine(tmp_path, driver="13.0", nvcc="13.0")
    python, log = _recording_python(tmp_path, installed=f"{pins['torch']} {pins['torchvision']}")
    dry = _run_script("--dry-run", env=env, python=python)
    assert dry.returncode == 0, dry.stderr
    assert not os.path.exists(log), "the dry run ran a command"

    real = _run_script(env=env, python=python)
    assert real.returncode == 0, real.stdout + real.stderr
    with open(log) as f:
        records = [json.loads(line) for line in f]
    ran = [_without_constraints_path([python, *r["argv"]]) for r in records]
    printed = [_without_constraints_path(cmd) for _, commands in _steps(dry.stdout) for cmd in commands]
    assert ran == printed
    assert [header for header, _ in _steps(real.stdout)] == [header for header, _ in _steps(dry.stdout)]
    # the package's step holds torch and torchvision at the builds step 1 installed
    (constraints,) = [r["constraints"] for r in records if "constraints" in r]
    assert constraints.split() == [f"torch=={pins['torch']}", f"torchvision=={pins['torchvision']}"]


@pytest.mark.parametrize(
    ("driver", "nvcc", "warning"),
    [
        ("13.0", "13.0", None),
        ("13.2", None, "no nvcc"),  # a newer driver runs the 13.0 build; flash-attn then needs a prebuilt wheel
        (None, "13.0", None),  # a build machine without a GPU: nvcc decides
        ("13.0", "12.8", "nvcc 12.8 is not CUDA 13.x"),
    ],
)
def test_detection_picks_the_default_cuda_build_when_the_machine_runs_it(tmp_path, driver, nvcc, warning):
    _, build = _torch_build()
    result = _run_script("--dry-run", env=_fake_machine(tmp_path, driver=driver, nvcc=nvcc))
    assert result.returncode == 0, result.stderr
    assert f"torch build {build}:" in result.stdout
    assert f"{PYTORCH_INDEX}/{build}" in _steps(result.stdout)[0][1][0]
    assert (warning in result.stdout) if warning else ("warning" not in result.stdout), result.stdout


def test_without_cuda_and_without_the_cuda_option_it_stops_with_one_line_naming_the_option(tmp_path):
    python, log = _recording_python(tmp_path, installed="")
    result = _run_script(env=_fake_machine(tmp_path, driver=None, nvcc=None), python=python)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--cuda" in lines[0], result.stderr
    assert not os.path.exists(log), "a command ran before the script stopped"


def test_a_driver_older_than_the_cuda_build_vllm_needs_stops_unless_the_build_is_named(tmp_path):
    _, build = _torch_build()
    env = _fake_machine(tmp_path, driver="12.8", nvcc="12.8")
    stopped = _run_script(env=env)
    assert stopped.returncode == 2
    (line,) = stopped.stderr.strip().splitlines()
    assert "12.8" in line and "--cuda" in line

    named = _run_script("--dry-run", "--cuda", "cu128", env=env)
    assert named.returncode == 0, named.stderr
    assert f"{PYTORCH_INDEX}/cu128" in _steps(named.stdout)[0][1][0]
    assert f"warning: cu128 is not {build}" in named.stdout


def test_the_dry_run_without_cuda_says_detection_found_none_and_prints_a_placeholder(tmp_path):
    result = _run_script("--dry-run", env=_fake_machine(tmp_path, driver=None, nvcc=None))
    assert result.returncode == 0, result.stderr
    assert "detection found no CUDA" in result.stdout and "--cuda" in result.stdout
    assert f"{PYTORCH_INDEX}/cuXYZ" in _steps(result.stdout)[0][1][0]


@pytest.mark.parametrize("args", [["--cuda", "12.8"], ["--cuda"], ["--frobnicate"]])
def test_a_bad_option_is_a_one_line_error(tmp_path, args):
    result = _run_script(*args, env=_fake_machine(tmp_path, driver="13.0", nvcc="13.0"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_help_names_the_options(tmp_path):
    result = _run_script("--help", env=_fake_machine(tmp_path, driver=None, nvcc=None))
    assert result.returncode == 0
    assert all(option in result.stdout for option in ("--dry-run", "--cuda", "requirements/cluster.txt"))


# ---- the pins, against the live indexes (read once per host; skipped when a host is unreachable) ----


@functools.cache
def _unreachable(host_url: str) -> str | None:
    """None when `host_url` answers, else why not. Checked once per session per host."""
    try:
        with urllib.request.urlopen(host_url, timeout=15) as response:
            response.read(1)
        return None
    except OSError as error:
        return str(error)


def _need(host_url: str) -> None:
    if why := _unreachable(host_url):
        pytest.skip(f"{host_url} is unreachable ({why}); the pins can only be checked against the live index")


def _get(url: str, max_bytes: int, accept: str | None = None) -> bytes:
    """A file of at most `max_bytes`: the checks read metadata and index pages, never a wheel."""
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        size = int(response.headers.get("Content-Length") or 0)
        assert size <= max_bytes, f"{url}: {size} bytes, more than the {max_bytes} this check may read"
        body = response.read(max_bytes + 1)
    assert len(body) <= max_bytes, f"{url}: more than the {max_bytes} bytes this check may read"
    return body


def _pypi_files(project: str) -> list[dict]:
    """The files PyPI lists for a project (the simple API's JSON form, PEP 691)."""
    body = _get(f"{PYPI}/{canonicalize_name(project)}/", 20_000_000, accept="application/vnd.pypi.simple.v1+json")
    return json.loads(body)["files"]


def _requirements(project: str, version: str) -> list[Requirement]:
    """Requires-Dist of a release, from the metadata file PyPI serves beside a wheel (PEP 658): kilobytes. Where
    that file is missing, a small wheel (openrlhf's: 0.2 MB) is read instead; a big one never is.
    The wheel is one this interpreter could install (CUDA requirements differ by platform), else a Linux x86_64 one.
    """
    here = set(sys_tags())
    wheels = []
    for f in _pypi_files(project):
        if f["filename"].endswith(".whl"):
            _, wheel_version, _, tags = parse_wheel_filename(f["filename"])
            linux = "linux" in f["filename"] and "x86_64" in f["filename"] or "none-any" in f["filename"]
            if str(wheel_version) == version and linux:
                wheels.append((not tags & here, f["filename"], f["url"].split("#")[0], f.get("size") or 0))
    assert wheels, f"PyPI lists no Linux x86_64 wheel of {project}=={version}"
    _, filename, url, size = min(wheels)
    try:
        metadata = _get(url + ".metadata", 1_000_000).decode()
    except urllib.error.HTTPError as error:
        if error.code != 404 or size > 5_000_000:
            raise
        with zipfile.ZipFile(io.BytesIO(_get(url, 5_000_000))) as wheel:
            (path,) = [n for n in wheel.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
            metadata = wheel.read(path).decode()
    message = email.parser.Parser().parsestr(metadata, headersonly=True)
    assert message["Version"] == version, (filename, message["Version"])
    return [Requirement(r) for r in message.get_all("Requires-Dist", [])]


def _pinned(requirements: list[Requirement], name: str, extra: str = "") -> str:
    """The version a release pins `name` to (==), under an extra of that release when given."""
    for requirement in requirements:
        applies = requirement.marker is None or requirement.marker.evaluate({"extra": extra})
        if canonicalize_name(requirement.name) == canonicalize_name(name) and applies:
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{requirement}: not an exact pin"
            return spec.version
    raise AssertionError(f"no requirement on {name} (extra {extra!r}) in {[str(r) for r in requirements]}")


def _cluster_extra() -> Requirement:
    """pyproject.toml's `cluster` extra: openrlhf[vllm]==<the supported release>."""
    import tomllib

    with open(os.path.join(REPO, "pyproject.toml"), "rb") as f:
        (entry,) = tomllib.load(f)["project"]["optional-dependencies"]["cluster"]
    return Requirement(entry)


def test_torch_torchvision_and_flash_attn_are_the_pins_of_openrlhf_and_of_the_vllm_it_pins():
    _need(PYPI + "/pip/")
    pins, openrlhf = _pins(), _cluster_extra()
    (openrlhf_spec,) = openrlhf.specifier
    openrlhf_requires = _requirements(openrlhf.name, openrlhf_spec.version)
    (extra,) = openrlhf.extras
    vllm = _pinned(openrlhf_requires, "vllm", extra=extra)
    vllm_requires = _requirements("vllm", vllm)
    assert _torch_build()[0] == _pinned(vllm_requires, "torch"), f"vllm=={vllm} pins another torch"
    assert pins["torchvision"].split("+")[0] == _pinned(vllm_requires, "torchvision")
    assert pins["flash-attn"] == _pinned(openrlhf_requires, "flash-attn")


def test_the_default_cuda_build_is_the_one_of_pypis_torch_which_vllms_wheel_is_built_against():
    _need(PYPI + "/pip/")
    torch, build = _torch_build()
    # torch's PyPI wheel names its CUDA through its CUDA library pins: cuda-toolkit==13.0.3 (or, in older
    # releases, nvidia-cuda-runtime-cu12==12.8.90)
    cuda = None
    for requirement in _requirements("torch", torch):
        if requirement.name in ("cuda-toolkit", "nvidia-cuda-runtime") or requirement.name.startswith(
            "nvidia-cuda-runtime-cu"
        ):
            (spec,) = requirement.specifier
            cuda = "cu" + "".join(spec.version.split(".")[:2])
    assert cuda == build, f"PyPI's torch=={torch} is a {cuda} build; requirements/cluster.txt names {build}"


def test_flash_attn_is_on_pypi_as_source_and_its_setup_needs_only_the_helpers_the_script_installs(tmp_path):
    _need(PYPI + "/pip/")
    version = _pins()["flash-attn"]
    (sdist,) = [f for f in _pypi_files("flash-attn") if f["filename"] == f"flash_attn-{version}.tar.gz"]
    assert sdist["size"] < 50_000_000  # about 8 MB: CUDA sources, no binaries
    archive = tarfile.open(fileobj=io.BytesIO(_get(sdist["url"].split("#")[0], 50_000_000)))
    setup = archive.extractfile(f"flash_attn-{version}/setup.py").read().decode()
    tree = ast.parse(setup)
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    setup_requires = next(
        ast.literal_eval(n.value) for n in ast.walk(tree) if isinstance(n, ast.keyword) and n.arg == "setup_requires"
    )
    needed = (imported - set(sys.stdlib_module_names) - {"torch"}) | set(setup_requires)

    result = _run_script("--dry-run", env=_fake_machine(tmp_path, driver="13.0", nvcc="13.0"))
    (helpers_cmd,) = _steps(result.stdout)[1][1]
    assert needed <= set(helpers_cmd[4:]), f"flash-attn's setup.py needs {needed}; step 2 installs {helpers_cmd}"


def test_the_default_torch_build_is_on_the_pytorch_index():
    _need(PYTORCH_INDEX + "/")
    pins, (_, build) = _pins(), _torch_build()
    python_tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    for project, pin in (("torch", pins["torch"]), ("torchvision", pins["torchvision"])):
        page = _get(f"{PYTORCH_INDEX}/{build}/{project}/", 5_000_000).decode()
        names = {urllib.parse.unquote(h.split("#")[0].rsplit("/", 1)[-1]) for h in re.findall(r'href="([^"]+)"', page)}
        wheel = re.compile(rf"{project}-{re.escape(pin)}-{python_tag}-{python_tag}-manylinux[\w.]*_x86_64\.whl")
        assert any(wheel.fullmatch(n) for n in names), (
            f"{PYTORCH_INDEX}/{build} has no {project}=={pin} for {python_tag}"
        )


# ---- the README ----


def _gpu_cluster_section(readme: str) -> str:
    """The text under the first heading that names the GPU cluster install, up to the next heading (a `#` line
    inside a fenced block is a shell comment, not a heading)."""
    headings, fenced = [], False
    lines = readme.splitlines()
    for i, line in enumerate(lines):
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#+ ", line):
            headings.append(i)
    start = next((i for i in headings if re.search("GPU cluster", lines[i], re.I)), None)
    assert start is not None, "README.md has no heading that names the GPU cluster install"
    end = next((i for i in headings if i > start), len(lines))
    return "\n".join(lines[start + 1 : end])


def _bash_commands(text: str) -> list[str]:
    """The commands of the ```bash blocks of a text, comments dropped and `a && b` split."""
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.M | re.S):
        for line in block.splitlines():
            code = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
            commands += [part.strip() for part in re.split(r"&&|;", code) if part.strip()]
    return commands


def test_the_readmes_gpu_cluster_install_is_the_script():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    commands = _bash_commands(_gpu_cluster_section(readme))
    assert any(c.startswith("bash scripts/install_cluster.sh") for c in commands), commands
    # a bare pip install of the cluster extra is the install that fails on a fresh machine (flash-attn)
    direct = [c for c in _bash_commands(readme) if re.search(r"pip install .*\[cluster\]", c)]
    assert not direct, f"README.md still installs the cluster extra with pip directly: {direct}"
