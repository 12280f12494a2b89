"""The package's layers: every import of vggnumpy (function-local ones included) goes down the stated order, no
module imports itself back through others, the top of the package stays small, and a kernel imports little."""
import ast
import os
import subprocess
import sys

from conftest import ROOT

PACKAGE = os.path.join(ROOT, "vggnumpy")

# The order of the layers, lowest first: a module may import its own layer and those before it, never one after.
# video and batch share a layer and may not import each other. The root package and __main__ sit above all.
LAYERS = [("files",), ("nn",), ("weights",), ("style",), ("optim",), ("learn",), ("config",), ("run",),
          ("feedforward",), ("video", "batch"), ("cli",)]
RANK = {name: k for k, names in enumerate(LAYERS) for name in names}
MAX_TOP_ENTRIES = 16            # files and folders at the top of vggnumpy/
MAX_KERNEL_MODULES = 10         # modules that `import vggnumpy.nn.kernels.conv` loads (fftconv, phases among them)


def modules():
    """{dotted name: path} of every module of the package (packages by their __init__)."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), ROOT)[:-3].replace(os.sep, ".")
                out[rel[:-len(".__init__")] if rel.endswith(".__init__") else rel] = os.path.join(folder, f)
    return out


def imports_of(name, path, known):
    """The vggnumpy modules `name` imports, anywhere in its source (function bodies included)."""
    is_pkg = path.endswith("__init__.py")
    package = name.split(".") if is_pkg else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "vggnumpy")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            elif (node.module or "").split(".")[0] == "vggnumpy":
                target = node.module
            else:
                continue
            for a in node.names:
                found.add(f"{target}.{a.name}" if f"{target}.{a.name}" in known else target)
    found.discard(name)
    return found


def graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def layer(name):
    """The layer of a module: its first part below vggnumpy (None for the root package and __main__)."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__main__" else None


def test_every_module_is_in_a_layer():
    unplaced = sorted({layer(m) for m in modules()} - set(RANK) - {None})
    assert not unplaced, f"add these to LAYERS in tests/test_layers.py: {unplaced}"


def upward_imports(g):
    bad = []
    for name, deps in sorted(g.items()):
        here = layer(name)
        for dep in sorted(deps):
            there = layer(dep)
            if here is None or there is None:
                if there is None and here is not None and dep != "vggnumpy":
                    bad.append(f"{name} imports {dep}")
                continue
            if RANK[there] > RANK[here] or (RANK[there] == RANK[here] and there != here):
                bad.append(f"{name} ({here}) imports {dep} ({there})")
    return bad


def test_imports_only_go_down_the_layers():
    bad = upward_imports(graph())
    order = " < ".join("/".join(group) for group in LAYERS)
    assert not bad, f"imports against the order {order}:\n" + "\n".join(bad)


def test_an_upward_import_is_caught():
    g = graph()
    g["vggnumpy.nn.network"] = g["vggnumpy.nn.network"] | {"vggnumpy.style.objective"}
    g["vggnumpy.video.clip"] = g["vggnumpy.video.clip"] | {"vggnumpy.batch.jobs"}
    assert upward_imports(g) == ["vggnumpy.nn.network (nn) imports vggnumpy.style.objective (style)",
                                 "vggnumpy.video.clip (video) imports vggnumpy.batch.jobs (batch)"]


def cycles(g):
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in list(g):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycle():
    assert cycles(graph()) == []
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_the_top_of_the_package_is_small():
    entries = [e for e in os.listdir(PACKAGE) if not e.startswith((".", "__pycache__"))]
    assert len(entries) <= MAX_TOP_ENTRIES, sorted(entries)


def test_every_layer_package_says_its_role():
    for name in RANK:
        path = os.path.join(PACKAGE, name, "__init__.py")
        if not os.path.exists(path):
            path = os.path.join(PACKAGE, name + ".py")
        doc = ast.get_docstring(ast.parse(open(path, encoding="utf-8").read()))
        assert doc and len(doc) > 60, f"{path} needs a paragraph on its role"


def loaded_by(statement):
    code = f"import sys; {statement}; print(sorted(m for m in sys.modules if m.split('.')[0] == 'vggnumpy'))"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    return ast.literal_eval(p.stdout.strip())


def test_importing_a_kernel_loads_only_what_it_needs():
    mods = loaded_by("import vggnumpy.nn.kernels.conv")
    assert len(mods) <= MAX_KERNEL_MODULES, mods
    assert not [m for m in mods if m.split(".")[1:2] in (["cli"], ["run"], ["video"], ["batch"], ["style"])], mods


def test_the_package_is_lazy_and_its_api_still_there():
    assert loaded_by("import vggnumpy") == ["vggnumpy"]
    mods = loaded_by("import vggnumpy; vggnumpy.stylize, vggnumpy.stylize_video, vggnumpy.Result")
    assert "vggnumpy.run.pipeline" in mods and "vggnumpy.video.clip" in mods
