"""`sam build` on this machine (Python 3.11, no python3.12, no Docker) makes artifacts for the template's runtime:
python3.12 on arm64 (Amazon Linux 2023, glibc 2.34). Checked by reading them, since they cannot run here."""

from __future__ import annotations

import ast
import re
import sys
from email.parser import Parser
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from source_tree import parse

from . import _elf

pytestmark = pytest.mark.deploy


def _template_functions() -> tuple[str, ...]:
    """Every function the template declares: a new one is checked without a change here."""
    from infra.local.template import load

    resources = load(Path(__file__).resolve().parents[2] / "template.yaml")["Resources"]
    return tuple(name for name, r in resources.items() if r["Type"] == "AWS::Serverless::Function")


FUNCTIONS = _template_functions()
# Amazon Linux 2023, the python3.12 runtime's OS: glibc 2.34 and the libraries every Linux has.
MAX_GLIBC = (2, 34)
SYSTEM_LIBRARIES = {
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
    "libgcc_s.so.1",
    "ld-linux-aarch64.so.1",
}
# What Lambda's python3.12 runtime itself provides beside the standard library.
RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "awslambdaric", "snapshot_restore_py"}
# Lambda's python3.12 on arm64, for the dependencies' environment markers.
TARGET_ENVIRONMENT = default_environment() | {
    "python_version": "3.12",
    "python_full_version": "3.12.0",
    "implementation_name": "cpython",
    "platform_python_implementation": "CPython",
    "platform_machine": "aarch64",
    "sys_platform": "linux",
    "platform_system": "Linux",
    "os_name": "posix",
}


def layer(build_dir: Path) -> Path:
    return build_dir / "CoreLayer" / "python"


def test_every_native_module_is_for_cpython_312_on_aarch64(build_dir: Path) -> None:
    natives = sorted(layer(build_dir).rglob("*.so"))
    assert natives, "no native module at all: the layer is not what src/requirements.txt installs"
    for path in natives:
        name = path.name
        assert name.endswith((".cpython-312-aarch64-linux-gnu.so", ".abi3.so")), f"{name}: not a cp312 aarch64 or abi3 module"
        elf = _elf.read(path)
        assert elf.machine == _elf.EM_AARCH64, f"{name}: ELF machine {elf.machine}, not aarch64"
        for version in elf.versions:
            if version.startswith("GLIBC_"):
                needed = tuple(int(p) for p in version.removeprefix("GLIBC_").split("."))
                assert needed <= MAX_GLIBC, f"{name} needs {version}; the python3.12 runtime has glibc 2.34"
        vendored = {p.name for p in layer(build_dir).glob("*.libs/*")}
        assert set(elf.needed) <= SYSTEM_LIBRARIES | vendored, f"{name} needs {set(elf.needed) - SYSTEM_LIBRARIES - vendored}"


def test_every_wheel_was_built_for_the_runtime(build_dir: Path) -> None:
    """Each installed distribution's WHEEL tags: pure Python, or CPython 3.12 / abi3 on aarch64 manylinux."""
    wheels = list(layer(build_dir).glob("*.dist-info/WHEEL"))
    assert wheels
    for wheel in wheels:
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        assert tags, wheel
        for tag in tags:
            python, abi, platform = tag.split("-")
            if platform == "any":
                assert python.startswith("py3") or python == "py2.py3", f"{wheel.parent.name}: {tag}"
                continue
            assert platform.endswith("_aarch64") and platform.startswith("manylinux"), f"{wheel.parent.name}: {tag}"
            assert abi in {"cp312", "abi3"}, f"{wheel.parent.name}: {tag}"


def test_lazily_imported_native_modules_are_there_for_the_runtime(build_dir: Path) -> None:
    """jwt and cryptography are imported at the first chat request, not at init: a wrong build fails only then
    (``No module named '_cffi_backend'``). So every distribution the layer's packages require (markers read
    for python3.12 on aarch64) must be installed, and the native modules they load must be there."""
    python = layer(build_dir)
    installed = {}
    for meta in python.glob("*.dist-info/METADATA"):
        parsed = Parser().parsestr(meta.read_text(encoding="utf-8"))
        installed[canonicalize_name(parsed["Name"])] = parsed
    missing = []
    for name, meta in installed.items():
        for raw in meta.get_all("Requires-Dist") or []:
            requirement = Requirement(raw)
            if requirement.marker is not None and not requirement.marker.evaluate(TARGET_ENVIRONMENT | {"extra": ""}):
                continue
            if canonicalize_name(requirement.name) not in installed | dict.fromkeys(RUNTIME_PROVIDED):
                missing.append(f"{name} requires {requirement}")
    assert not missing
    assert (python / "cryptography" / "hazmat" / "bindings" / "_rust.abi3.so").is_file()
    assert list(python.glob("_cffi_backend.cpython-312-aarch64-linux-gnu.so"))
    if (python / "pydantic_core").exists():
        assert list((python / "pydantic_core").glob("_pydantic_core.cpython-312-aarch64-linux-gnu.so"))


def _imports(path: Path) -> set[str]:
    """Top-level modules a file imports anywhere (module level or inside functions), relative imports aside."""
    found: set[str] = set()
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


# Imports the layer's code makes of packages it does not ship, each on a path no function takes (where, and why).
ADMIN_ONLY = {
    # Validating a configuration file is `switchboard apply`'s work (jsonschema is in requirements-dev.txt);
    # the functions only read the stored settings. route reaches config_schema for its defaults alone.
    "jsonschema": "CoreLayer/python/switchboard/config_schema.py",
}


def test_everything_the_code_imports_is_in_the_layer_or_the_runtime(build_dir: Path) -> None:
    python = layer(build_dir)
    shipped = {p.name.removesuffix(".py") for p in python.iterdir()} | {p.name.split(".")[0] for p in python.glob("*.so")}
    sources = list((python / "switchboard").rglob("*.py")) + [build_dir / f / "app.py" for f in FUNCTIONS]
    unresolved = {
        f"{path.relative_to(build_dir)}: {module}"
        for path in sources
        for module in _imports(path)
        if module not in sys.stdlib_module_names
        and module not in shipped
        and module not in RUNTIME_PROVIDED
        and module != "__future__"
    } - {f"{where}: {module}" for module, where in ADMIN_ONLY.items()}
    # A module here is shipped in the layer and imports a package the layer does not hold: pin that package in
    # src/requirements.txt, or keep the importing code out of src/switchboard (admin-only code lives in infra/).
    assert not unresolved, sorted(unresolved)


def test_functions_hold_their_handler_only_and_nothing_ships_test_data(build_dir: Path) -> None:
    for function in FUNCTIONS:
        assert {p.name for p in (build_dir / function).iterdir()} <= {"app.py", "__init__.py"}, function
    everything = [p.relative_to(build_dir).as_posix() for p in build_dir.rglob("*")]
    assert not [p for p in everything if re.search(r"(^|/)(testdata|tests?)(/|$)", p) and "/site-packages/" not in p]
    assert not [p for p in everything if "__pycache__" in p and "cpython-312" not in p], "bytecode of another Python"
    assert (layer(build_dir) / "switchboard" / "lambda_entry.py").is_file()
