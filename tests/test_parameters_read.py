"""Every parameter under ``conf/`` is read by the code: no dead options.

A parameter counts as read when three links hold, each checked here on the code's structure (its
syntax tree and the registered pipelines), not by searching text:

1. **Its group reaches a node.** Some node of a registered pipeline takes ``params:<group>`` as an
   input (``register_pipelines()`` after ``bootstrap_project``, as ``kedro run`` builds them).
2. **The node turns the whole group into its config.** The node function calls
   ``<GroupConfig>.from_dict(<that argument>)``. ``from_dict`` rejects unknown and missing keys
   (``tests/test_config.py``), so every key of the group is a field of the config, nested groups
   (``jhmdb.single.radius``) included.
3. **Every field along the key's path is read by code that handles that config.** An attribute load
   ``x.<field>`` counts only where ``x`` is known to be that config (or the nested config a field
   holds): a name annotated with the class (``cfg: DavisConfig``), a name bound to
   ``DavisConfig.from_dict(...)``, a direct ``DavisConfig.from_dict(...).device``, ``self`` inside the
   class, or a config-typed field or method result (``self.fused.propagation()``). A
   ``getattr(x, axis)`` whose name runs over string constants (``for axis in {"topks": ...}``) counts
   for those names. Reads inside the checks and conversions every field goes through
   (``__post_init__``, ``_problems``, ``from_dict``, ``to_dict``, ``keys``, ``training_options``) do
   not count, and a read inside another method of a config class counts only when that method is
   itself used outside its class (``cfg.resolve(...)``, ``semantic.enabled``). One group is passed
   on whole as keyword arguments (``frames``: ``build_frame_index(**options)``): there, each key must
   be a parameter of the receiving function that its body reads.

What this proves, and what it does not: each field is consumed by the code that receives its
config; a read that only reaches a log line would pass. Whether a value changes the results is what
the behavioural tests of each package check. A field read only in ``config.py``'s own validation is
reported as unread.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kedro.framework.startup import bootstrap_project

from sfc.config import StrictConfig
from sfc.data.frames import build_frame_index
from sfc.parameters import GROUPS

REPO = Path(__file__).resolve().parents[1]
SRC = REPO / "src" / "sfc"
#: Every parameters file of every Kedro env (base, demo, ...); conf/local is each user's own.
PARAMETER_FILES = sorted(p for p in (REPO / "conf").glob("*/parameters*.yml") if p.parent.name != "local")

#: Methods every field goes through (checks and conversions): reads there are not uses.
PLUMBING = {"__post_init__", "_problems", "from_dict", "to_dict", "keys", "training_options"}

#: Groups handed on whole as keyword arguments: ``{group: the function receiving them}``.
KWARGS_READERS = {"frames": build_frame_index}


# ------------------------------------------------------------------------------------ conf/ side
def _leaf_paths(node: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaf_paths(value, (*prefix, str(key)))
    else:
        yield prefix


def conf_parameter_paths() -> dict[str, list[str]]:
    """``{"propagation.topk": ["conf/base/parameters.yml"], ...}``: every leaf key path, per file."""
    paths: dict[str, list[str]] = {}
    for file in PARAMETER_FILES:
        for path in _leaf_paths(yaml.safe_load(file.read_text()) or {}):
            paths.setdefault(".".join(path), []).append(str(file.relative_to(REPO)))
    return paths


def _fields(cls: type) -> dict[str, dataclasses.Field]:
    return {f.metadata.get("key", f.name): f for f in dataclasses.fields(cls)}


def field_path(key_path: str) -> list[tuple[type[StrictConfig], str]]:
    """``jhmdb.single.radius`` -> ``[(JhmdbConfig, "single"), (PropagationConfig, "radius")]``."""
    group, *keys = key_path.split(".")
    cls: type = GROUPS[group]
    steps = []
    for key in keys:
        fields = _fields(cls)
        assert key in fields, f"{key_path}: {key!r} is not a key of {cls.__name__} ({', '.join(fields)})"
        steps.append((cls, fields[key].name))
        cls = typing.get_type_hints(cls)[fields[key].name]
    return steps


# ------------------------------------------------------------------------------------ code side
def _config_classes() -> dict[str, type[StrictConfig]]:
    seen: dict[str, type[StrictConfig]] = {}

    def walk(cls: type[StrictConfig]) -> None:
        for klass in cls.__mro__:
            if isinstance(klass, type) and issubclass(klass, StrictConfig) and klass is not StrictConfig:
                seen.setdefault(klass.__name__, klass)
        for tp in typing.get_type_hints(cls).values():
            if isinstance(tp, type) and issubclass(tp, StrictConfig) and tp.__name__ not in seen:
                walk(tp)

    for cls in GROUPS.values():
        walk(cls)
    return seen


CLASSES = _config_classes()


class _Reads(ast.NodeVisitor):
    """Attribute reads on expressions known to be a config: ``reads[(class name, attribute)]``."""

    def __init__(self, module: str) -> None:
        self.module = module
        self.reads: set[tuple[str, str, str]] = set()  # (class, attribute, "module:function")
        self.class_stack: list[str] = []
        self.scopes: list[dict[str, set[str]]] = []  # name -> config classes it may hold
        self.functions: list[str] = []
        self.constants: list[dict[str, set[str]]] = []  # name -> string constants it runs over

    # ------------------------------------------------------------------ types of expressions
    def _annotation(self, node: ast.AST | None) -> set[str]:
        if node is None:
            return set()
        return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and n.id in CLASSES} | {
            n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and n.value in CLASSES
        }

    def type_of(self, node: ast.AST) -> set[str]:
        if isinstance(node, ast.Name):
            for scope in reversed(self.scopes):
                if node.id in scope:
                    return scope[node.id]
            return set()
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "from_dict" and isinstance(func.value, ast.Name):
                return {func.value.id} if func.value.id in CLASSES else set()
            if isinstance(func, ast.Name) and func.id in CLASSES:
                return {func.id}
            if isinstance(func, ast.Attribute):  # a config method returning a config
                out = set()
                for name in self.type_of(func.value):
                    method = getattr(CLASSES[name], func.attr, None)
                    if callable(method):
                        ret = typing.get_type_hints(method).get("return")
                        if isinstance(ret, type) and ret.__name__ in CLASSES:
                            out.add(ret.__name__)
                return out
            return set()
        if isinstance(node, ast.Attribute):  # a field holding a nested config
            out = set()
            for name in self.type_of(node.value):
                hints = typing.get_type_hints(CLASSES[name])
                tp = hints.get(node.attr)
                if isinstance(tp, type) and tp.__name__ in CLASSES:
                    out.add(tp.__name__)
            return out
        return set()

    def _bind(self, target: ast.AST, value: ast.AST | None, annotation: ast.AST | None = None) -> None:
        types = self._annotation(annotation)
        if value is not None:
            if isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple):
                for t, v in zip(target.elts, value.elts, strict=False):
                    self._bind(t, v)
                return
            types |= self.type_of(value)
            if isinstance(target, ast.Name) and isinstance(value, ast.Dict | ast.Tuple | ast.List | ast.Set):
                items = value.keys if isinstance(value, ast.Dict) else value.elts
                strings = {k.value for k in items if isinstance(k, ast.Constant) and isinstance(k.value, str)}
                if strings and self.constants:
                    self.constants[-1][target.id] = strings
        if isinstance(target, ast.Name) and types and self.scopes:
            self.scopes[-1][target.id] = types

    # ------------------------------------------------------------------ scopes
    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self.class_stack.append(node.name)
        self.generic_visit(node)
        self.class_stack.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        in_config = bool(self.class_stack) and self.class_stack[-1] in CLASSES and not self.functions
        if in_config and node.name in PLUMBING:
            return
        scope: dict[str, set[str]] = {}
        args = [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        for arg in args:
            types = self._annotation(arg.annotation)
            if types:
                scope[arg.arg] = types
        if in_config and args and args[0].arg == "self":
            scope["self"] = {self.class_stack[-1]}
        owner = f"{self.class_stack[-1]}." if in_config else ""
        self.functions.append(f"{self.module}:{owner}{node.name}")
        self.scopes.append(scope)
        self.constants.append({})
        self.generic_visit(node)
        self.constants.pop()
        self.scopes.pop()
        self.functions.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Assign(self, node: ast.Assign) -> None:
        self.generic_visit(node)
        for target in node.targets:
            self._bind(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.generic_visit(node)
        self._bind(node.target, node.value, node.annotation)

    def _loop(self, target: ast.AST, iterable: ast.AST) -> None:
        # `for axis in {"lambdas": ..., ...}` / `for axis in fallback`: axis runs over string constants
        strings: set[str] = set()
        source = iterable.func.value if (  # d.items() / d.keys()
            isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute)
            and iterable.func.attr in ("items", "keys")
        ) else iterable
        if isinstance(source, ast.Name):
            for table in reversed(self.constants):
                if source.id in table:
                    strings = table[source.id]
                    break
        elif isinstance(source, ast.Dict | ast.Tuple | ast.List | ast.Set):
            items = source.keys if isinstance(source, ast.Dict) else source.elts
            strings = {k.value for k in items if isinstance(k, ast.Constant) and isinstance(k.value, str)}
        if isinstance(target, ast.Tuple) and target.elts:
            target = target.elts[0]
        if strings and isinstance(target, ast.Name) and self.constants:
            self.constants[-1][target.id] = strings

    def visit_For(self, node: ast.For) -> None:
        self._loop(node.target, node.iter)
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        self._loop(node.target, node.iter)
        self.generic_visit(node)

    def _visit_comprehension_expr(self, node: ast.AST) -> None:
        for gen in node.generators:  # type: ignore[attr-defined]
            self.visit(gen)
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, ast.comprehension):
                self.visit(child)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension_expr  # type: ignore[assignment]

    # ------------------------------------------------------------------ reads
    def _record(self, classes: set[str], attr: str) -> None:
        where = self.functions[-1] if self.functions else f"{self.module}:<module>"
        for name in classes:
            self.reads.add((name, attr, where))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if isinstance(node.ctx, ast.Load):
            self._record(self.type_of(node.value), node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 2:
            classes = self.type_of(node.args[0])
            name = node.args[1]
            if isinstance(name, ast.Constant) and isinstance(name.value, str):
                self._record(classes, name.value)
            elif isinstance(name, ast.Name):
                for table in reversed(self.constants):
                    if name.id in table:
                        for value in table[name.id]:
                            self._record(classes, value)
                        break
        self.generic_visit(node)


def attribute_reads() -> set[tuple[str, str, str]]:
    """``(class, attribute, "module:function")`` for every typed attribute read in ``src/sfc``."""
    reads: set[tuple[str, str, str]] = set()
    for path in sorted(SRC.rglob("*.py")):
        visitor = _Reads(str(path.relative_to(SRC)))
        visitor.visit(ast.parse(path.read_text(), filename=str(path)))
        reads |= visitor.reads
    return reads


def used_fields() -> dict[str, set[str]]:
    """``{class: {field or method read by code that uses the config}}``, inherited reads included.

    A read inside a non-plumbing method ``Class.method`` counts once ``method`` itself is used
    outside that class (resolved to a fixed point: a method used only by an unused method is unused).
    """
    reads = attribute_reads()
    used: dict[str, set[str]] = {name: set() for name in CLASSES}
    live: set[str] = set()  # "Class.method" readers reached from outside their class
    while True:
        before = {k: set(v) for k, v in used.items()}
        for cls, attr, where in reads:
            function = where.split(":", 1)[1]
            owner = function.split(".")[0] if "." in function else None
            if owner in CLASSES and function not in live:
                continue  # inside a config method nobody outside uses (yet)
            used[cls].add(attr)
        for name, klass in CLASSES.items():
            for attr in used[name]:
                for base in klass.__mro__:
                    if base.__name__ in CLASSES and attr in vars(base):
                        live.add(f"{base.__name__}.{attr}")
        # a read on a base class counts for its subclasses (they run the same code)
        for name, klass in CLASSES.items():
            for base in klass.__mro__[1:]:
                if base.__name__ in used:
                    used[name] |= used[base.__name__]
        if used == before:
            return used


# ------------------------------------------------------------------------------------ tests
@pytest.fixture(scope="module")
def pipelines() -> dict[str, Any]:
    bootstrap_project(REPO)
    from sfc.pipeline_registry import register_pipelines

    return register_pipelines()


def _params_inputs(pipelines: dict[str, Any]) -> dict[str, list[tuple[str, Any, str]]]:
    """``{group: [(pipeline, node, argument name)]}`` for every ``params:<group>`` node input."""
    out: dict[str, list[tuple[str, Any, str]]] = {}
    for pipeline_name, pipeline in pipelines.items():
        for node in pipeline.nodes:
            # Node.inputs is in the order that binds them to the function's arguments
            bound = inspect.signature(node.func).bind(*node.inputs).arguments
            for argument, dataset in bound.items():
                if dataset.startswith("params:"):
                    out.setdefault(dataset[len("params:"):], []).append((pipeline_name, node, argument))
    return out


def test_every_parameter_group_reaches_a_node_that_builds_its_config(pipelines: dict[str, Any]) -> None:
    consumed = _params_inputs(pipelines)
    groups = {path.split(".")[0] for path in conf_parameter_paths()}
    assert groups <= set(GROUPS), f"groups under conf/ without a config class: {sorted(groups - set(GROUPS))}"
    assert not groups - set(consumed), f"groups no node takes as params:<group>: {sorted(groups - set(consumed))}"
    assert all("." not in group for group in consumed), "a node takes part of a group: check its keys here"
    for group, uses in consumed.items():
        cls = GROUPS[group]
        for pipeline_name, node, argument in uses:
            tree = ast.parse(inspect.getsource(node.func).lstrip())
            calls = [
                n for n in ast.walk(tree)
                if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr == "from_dict"
                and isinstance(n.func.value, ast.Name) and n.func.value.id == cls.__name__
                and n.args and isinstance(n.args[0], ast.Name) and n.args[0].id == argument
            ]
            assert calls, (
                f"{pipeline_name}: node {node.name} takes params:{group} as {argument!r} but never calls "
                f"{cls.__name__}.from_dict({argument}), so its keys are not all checked"
            )


def test_every_parameter_in_conf_is_read_by_the_code() -> None:
    assert {"base", "demo"} <= {p.parent.name for p in PARAMETER_FILES}
    paths = conf_parameter_paths()
    assert len(paths) > 60 and "jhmdb.single.radius" in paths and "propagation.topk" in paths
    used = used_fields()
    unread = []
    for key_path, files in sorted(paths.items()):
        group = key_path.split(".")[0]
        steps = field_path(key_path)
        if group in KWARGS_READERS:
            continue  # test_groups_passed_as_keyword_arguments
        for cls, name in steps:
            if name not in used[cls.__name__]:
                unread.append(f"{key_path} ({', '.join(files)}): {cls.__name__}.{name} is never read")
                break
    assert not unread, "parameters no code reads:\n  " + "\n  ".join(unread)


@pytest.mark.parametrize("group", sorted(KWARGS_READERS))
def test_groups_passed_as_keyword_arguments(group: str) -> None:
    function = KWARGS_READERS[group]
    parameters = inspect.signature(function).parameters
    keys = GROUPS[group].keys()
    assert set(keys) <= set(parameters), f"{function.__name__} lacks {sorted(set(keys) - set(parameters))}"
    tree = ast.parse(inspect.getsource(function))
    body = tree.body[0]
    assert isinstance(body, ast.FunctionDef)
    loaded = {n.id for stmt in body.body for n in ast.walk(stmt) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    assert not set(keys) - loaded, f"{function.__name__} never reads {sorted(set(keys) - loaded)}"
    for key in keys:  # keyword-only without a default: a missing or extra key is a TypeError at the call
        assert parameters[key].default is inspect.Parameter.empty, key


def test_the_analysis_sees_reads_and_misses() -> None:
    """The analysis itself: typed reads count, untyped ones and validation-only ones do not."""
    source = '''
from sfc.config import PropagationConfig, FusionSearchConfig, DavisConfig
def node(propagation, other):
    p = PropagationConfig.from_dict(propagation)
    use(p.topk, other.radius)
def helper(cfg: PropagationConfig) -> None:
    use(cfg.temperature)
def grid(search: FusionSearchConfig) -> None:
    table = {"topks": 1, "radii": 2}
    return [getattr(search, axis) for axis in table]
def direct(davis):
    return DavisConfig.from_dict(davis).scale
'''
    visitor = _Reads("example.py")
    visitor.visit(ast.parse(source))
    reads = {(c, a) for c, a, _ in visitor.reads}
    assert {("PropagationConfig", "topk"), ("PropagationConfig", "temperature")} <= reads
    assert {("FusionSearchConfig", "topks"), ("FusionSearchConfig", "radii"), ("DavisConfig", "scale")} <= reads
    assert ("PropagationConfig", "radius") not in reads  # `other` is not known to be a config
    used = used_fields()
    # FusedPropagationConfig's fields are read through its propagation() method, which JHMDB/VIP use
    assert {"topk", "lam", "propagation"} <= used["FusedPropagationConfig"]
    assert {"settings", "single", "fused"} <= used["JhmdbConfig"]
    # frames.jpeg_quality is read by FramesConfig only in its range check: that is not a use
    assert "jpeg_quality" not in used["FramesConfig"]
