"""Modules import only from layers below them (house style, section 1)."""

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "digitrec"
# A companion module sits half a layer off: augment and artifact above what they build on,
# files, batching and cli_parser just below the module they serve. The recognizer sits below
# training and evaluation: it is how they run a model (a teacher, a member, a split).
LAYERS = {
    "errors": 0,
    "contract": 0.25,
    "files": 0.5,
    "data": 1,
    "preprocess": 1,
    "metrics": 1,
    "recipes": 1,
    "temperature": 1,
    "synth": 1.5,  # draws marks as any input is normalised
    "corrections": 1.5,  # reads a user's own digits as any input is normalised
    "models": 2,
    "augment": 2.5,
    "artifact": 2.5,
    "report": 2.5,
    "backends": 2.6,
    "recognizer": 2.75,
    "checkpoints": 2.8,
    "explanation": 2.9,  # runs a model through the recognizer
    "fitting": 3,
    "evaluation": 3,
    "distribute": 3.25,
    "ensemble": 3.25,
    "adaptation": 3.1,  # fine-tunes as fitting does, on a user's digits
    "training": 3.5,
    "batching": 4.5,
    "exporter": 5,
    "profiles": 5.1,  # adapts, then exports the adapted model for serving
    "server": 5.2,
    "cli_parser": 5.25,
    "cli": 5.5,
    "__main__": 6,
    "__init__": 6,
}


def _digitrec_imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("digitrec."):
            names.add(node.module.split(".")[1])
        elif isinstance(node, ast.Import):
            names |= {a.name.split(".")[1] for a in node.names if a.name.startswith("digitrec.")}
    return names


def test_every_module_has_a_layer():
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    assert modules <= set(LAYERS), f"give these a layer in this test: {modules - set(LAYERS)}"


def test_no_module_imports_from_its_own_layer_or_above():
    upward = []
    for path in PACKAGE.glob("*.py"):
        for name in _digitrec_imports(path):
            if LAYERS[name] >= LAYERS[path.stem] and path.stem != "__main__":
                upward.append(f"{path.stem} imports {name}")
    assert upward == []


def test_nothing_imports_the_cli_but_the_entry_point():
    importers = [p.stem for p in PACKAGE.glob("*.py") if "cli" in _digitrec_imports(p)]
    assert importers == ["__main__"]


def test_layer_one_modules_do_not_import_keras_or_tensorflow():
    for stem in (
        "errors",
        "contract",
        "files",
        "data",
        "metrics",
        "preprocess",
        "synth",
        "recipes",
        "corrections",
    ):
        tree = ast.parse((PACKAGE / f"{stem}.py").read_text())
        imported = {
            a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
        }
        imported |= {
            n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module
        }
        assert not imported & {"keras", "tensorflow"}, stem


def test_the_recognizer_and_the_command_line_parser_import_no_tensorflow():
    # What a .tflite model and a mistyped command need: neither may wait for TensorFlow.
    code = (
        "import sys, digitrec.recognizer, digitrec.cli, digitrec.cli_parser, digitrec.artifact\n"
        "heavy = {'tensorflow', 'keras'} & set(sys.modules)\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_every_module_has_a_test_file_of_its_own():
    tests = Path(__file__).resolve().parent
    untested = [p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")]
    untested = [stem for stem in untested if not (tests / f"test_{stem}.py").is_file()]
    assert untested == [], f"give these a tests/test_<module>.py: {untested}"
