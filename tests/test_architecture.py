"""The architecture rules of ../shared/DESIGN.md, kept true by tests: one-way layers, no import circles, a
cheap CLI start, and one explicit method contract (docs/architecture.md)."""
import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import multissl
from multissl.registry import METHODS, MODEL_TYPE_PREFIX

PACKAGE = Path(multissl.__file__).parent
# Lowest first; an import may point only to the same or a lower layer.
LAYERS = [
    {"objectives", "decoding", "errors", "paths", "atomic", "registry", "schedules", "_discover"},
    {"modalities"},
    {"data"},
    {"models"},
    {"evaluation", "evaluate_modules"},
    {"training"},
    {"commands"},
    {"cli", "__init__", "api"},
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking_block(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and isinstance(test, ast.Name) and test.id == "TYPE_CHECKING"


def runtime_imports(path: Path) -> set[str]:
    """multissl modules that `path` imports at run time (module level or inside functions; not under TYPE_CHECKING)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _is_type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "multissl")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "multissl":
            # `from multissl.training import run_dir` imports a submodule, not a name of the package's __init__
            subs = {f"{node.module}.{a.name}" for a in node.names
                    if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
            found.update(subs)
            if len(subs) < len(node.names):
                found.add(node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return found


def _layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


SOURCES = sorted(PACKAGE.rglob("*.py"))
GRAPH = {_module_name(p): runtime_imports(p) for p in SOURCES}


def test_every_package_is_in_a_layer():
    unknown = {_layer_of(m) for m in GRAPH} - set(RANK)
    assert not unknown, f"put these in LAYERS (and in DESIGN.md's layer list): {sorted(unknown)}"


def test_imports_only_point_down():
    upward = [f"{src} -> {dst}" for src, dsts in GRAPH.items() for dst in dsts
              if RANK[_layer_of(dst)] > RANK[_layer_of(src)]]
    assert not upward, "upward imports:\n" + "\n".join(sorted(upward))


def test_no_import_circles_between_modules():
    # Explicit imports only: a submodule's implicit import of its own package __init__ (which may
    # re-export that submodule) is how Python packages work, not a circle.
    edges = {m: {d for d in ds if d in GRAPH} for m, ds in GRAPH.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def dfs(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(edges[node]):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [node, nxt])
            elif nxt not in state:
                dfs(nxt, stack + [node])
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            dfs(module, [])
    assert not cycles, "import circles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_loop_never_probes_a_model_with_getattr():
    loop = (PACKAGE / "training" / "loop.py").read_text()
    assert "getattr(" not in loop and "hasattr(" not in loop


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv", [["list"], ["--help"], ["train", "--help"], ["eval", "knn", "--help"], ["generate", "--help"],
                                  ["data", "build", "--help"], ["export", "--help"], ["zero-shot", "--help"]])
def test_listing_and_help_import_neither_torch_nor_transformers(argv):
    code = (f"import sys\nfrom multissl.cli import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'datasets') if m in sys.modules)\n"
            "print('HEAVY', heavy)")
    res = _run(code)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "HEAVY []" in res.stdout, f"{argv}: {res.stdout[-300:]}"


def test_training_a_method_imports_only_that_method():
    code = ("import sys\nfrom multissl.registry import get_method\nget_method('simclr').model_class\n"
            "print(sorted(m for m in sys.modules if m.startswith('multissl.models.') and m.count('.') == 2))")
    res = _run(code)
    assert res.returncode == 0, res.stderr[-2000:]
    loaded = set(eval(res.stdout.strip().splitlines()[-1]))
    assert "multissl.models.simclr" in loaded
    assert not loaded & {f"multissl.models.{n}" for n in METHODS if n != "simclr"}, loaded


def _method_classes() -> list[type]:
    multissl.register_auto_classes()
    from multissl.models.base import MethodConfig, MethodModel

    found, todo = [], [MethodModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            # a family base (e.g. SemiSupervisedModel) keeps MethodConfig: only concrete methods name their own config
            if sub.__module__.startswith("multissl.models.") and "config_class" in vars(sub) \
                    and sub.config_class is not MethodConfig:
                found.append(sub)
    return found


def test_every_method_class_is_registered_with_its_model_type():
    registered = {spec.model_class: name for name, spec in METHODS.items()}
    for cls in _method_classes():
        assert cls in registered, f"{cls.__module__}.{cls.__name__} is a MethodModel but not in multissl.registry.METHODS"
        assert cls.config_class.model_type == MODEL_TYPE_PREFIX + registered[cls]


@pytest.mark.parametrize("name", sorted(METHODS))
def test_main_input_name_is_the_first_argument_of_forward(name):
    cls = METHODS[name].model_class
    first = list(inspect.signature(cls.forward).parameters)[1]
    assert cls.main_input_name == first, f"{name}: main_input_name {cls.main_input_name!r}, forward starts with {first!r}"


@pytest.mark.parametrize("name", sorted(METHODS))
def test_temperature_keys_are_spelled_out(name):
    from multissl.models.base import config_keys

    keys = config_keys(METHODS[name].config_class)
    odd = {k for k in keys if "temp" in k and "temperature" not in k}
    assert not odd, f"{name}: temperature keys {sorted(odd)}: spell temperature out (loss_temperature, teacher_temperature)"


def test_no_test_reads_a_wall_clock():
    # Speed is measured in benchmarks/ as a ratio; a time limit in a test fails on a busy machine.
    tests = Path(__file__).resolve().parent
    offenders = [str(p.relative_to(tests)) for p in tests.rglob("*.py")
                 if any(s in p.read_text() for s in ("perf_" + "counter(", "time." + "time(", "mono" + "tonic("))]
    assert not offenders, offenders
