"""Least privilege, checked against the code: each function's IAM policy grants exactly the AWS actions its code calls.

The actions are derived from the source, not listed by hand:

1. From ``functions/<name>/app.py`` (the template's ``CodeUri`` + ``Handler``), walk what the
   handler can reach with ``ast``: the modules it imports (lazy imports inside a function count once
   that function is reachable; ``if TYPE_CHECKING`` imports never do), and within them the
   functions and methods that reachable code names (a call graph by name: ``store.current(...)``
   reaches every loaded ``current``; a class named reaches its body and its dunder methods). Names
   over-approximate, which can only add actions, never hide one.
2. In reachable code, find the AWS clients (``client("sqs")``; a local, attribute or property bound
   to one; a function or property returning one) and the operations called on them, paginators
   included (``get_paginator("query")`` is the Query operation).
3. Map each method to its IAM action through botocore's own service model (``put_item`` is
   ``dynamodb:PutItem``), with the few documented exceptions below (SQS batch operations are
   authorised as their single-message actions).
4. Powertools utilities call AWS inside the library with the client we hand them; what each does
   is the small, explained mapping ``POWERTOOLS``. A Powertools name the mapping does not know
   fails the test, so a new utility cannot slip in unaccounted.

The template side reads each function's ``Policies`` (inline statements; SAM policy templates and
managed policies are refused unless expanded here). The tests then require, per function: no
wildcard action, nothing missing, nothing unused; no ``Resource: "*"`` beyond ``STAR_RESOURCE_OK``;
every resource one of the stack's own (a table, queue or bucket of the template, or a secret under
``switchboard/${AWS::StackName}/``) and named by the function's own environment.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from source_tree import parse as parse_source

from infra.local.template import load

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
PACKAGES = {"switchboard": ROOT / "src" / "switchboard", "functions": ROOT / "functions"}

# What Powertools does with the boto3 client it is given (read in aws_lambda_powertools 3.x):
# - DynamoDBPersistenceLayer, behind idempotent_function: put_item saves the in-progress record
#   (conditional), get_item reads the existing record when that put fails, update_item saves the
#   result, delete_item removes the record when the function raised. Constructing one means all four.
# - SecretsProvider.get: get_secret_value (get_multiple would be batch_get_secret_value; set would
#   be create_secret/put_secret_value: neither is in the mapping, so calling one fails the test).
POWERTOOLS_CONSTRUCTED: dict[str, frozenset[str]] = {
    "DynamoDBPersistenceLayer": frozenset({"dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"}),
}
POWERTOOLS_METHODS: dict[tuple[str, str], frozenset[str]] = {
    ("SecretsProvider", "get"): frozenset({"secretsmanager:GetSecretValue"}),
}
TRACKED_UTILITIES = frozenset(cls for cls, _ in POWERTOOLS_METHODS)
# Powertools names that make no AWS call of their own: logs and metrics go to stdout (EMF), batch
# processing only reads the event Lambda passed in, the rest are types, configuration and errors.
POWERTOOLS_NO_AWS = frozenset(
    {
        "Logger",
        "Metrics",
        "SqsFifoPartialProcessor",
        "BatchProcessor",
        "EventType",
        "process_partial_response",
        "SQSRecord",
        "IdempotencyConfig",
        "idempotent_function",
        "GetParameterError",
        "TransformParameterError",
        "SecretsProvider",  # its calls are counted per method (POWERTOOLS_METHODS)
        "DynamoDBPersistenceLayer",  # counted when constructed (POWERTOOLS_CONSTRUCTED)
    }
)
# IAM authorises SQS batch operations as their single-message actions ("You cannot set permissions
# explicitly for SendMessageBatch, DeleteMessageBatch, or ChangeMessageVisibilityBatch", SQS guide).
IAM_ACTION_OF: dict[str, str] = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    "sqs:ChangeMessageVisibilityBatch": "sqs:ChangeMessageVisibility",
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
}
# boto3's S3 transfer methods are not service operations; what each is authorised as.
S3_TRANSFER: dict[str, frozenset[str]] = {
    "upload_file": frozenset({"s3:PutObject"}),
    "upload_fileobj": frozenset({"s3:PutObject"}),
    "download_file": frozenset({"s3:GetObject"}),
    "download_fileobj": frozenset({"s3:GetObject"}),
}
# Actions AWS only authorises on "*" (none of them is used today); any other "*" resource fails.
STAR_RESOURCE_OK = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords", "cloudwatch:PutMetricData"})
CLIENT_METHODS_WITHOUT_CALL = frozenset({"get_waiter", "can_paginate", "close", "exceptions", "meta"})


# -- the code side ------------------------------------------------------------------------------------


@dataclass
class Unit:
    """A piece of code that runs as a whole: a module's top level, a class body, a function or method."""

    module: str
    name: str  # what names it: function or method name, class name, or "" for a module's top level
    kind: str  # "module", "class", "function", "method"
    nodes: list[ast.AST]
    owner: str | None = None  # the class of a method
    walked: list[ast.AST] | None = field(default=None, compare=False, repr=False)  # every node, once computed


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    units: list[Unit] = field(default_factory=list)
    powertools: set[str] = field(default_factory=set)  # names imported from aws_lambda_powertools


def module_path(name: str) -> Path | None:
    top, _, rest = name.partition(".")
    base = PACKAGES.get(top)
    if base is None:
        return None
    target = base.joinpath(*rest.split(".")) if rest else base
    if (target / "__init__.py").exists():
        return target / "__init__.py"
    if target.with_suffix(".py").exists():
        return target.with_suffix(".py")
    return None


def _type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (
        isinstance(test, ast.Name | ast.Attribute)
        and (getattr(test, "id", None) or getattr(test, "attr", None)) == "TYPE_CHECKING"
    )


def _top_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Statements that run when the body runs: not the bodies of the functions and classes defined in it."""
    for stmt in body:
        if _type_checking(stmt):
            continue
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield from stmt.decorator_list
            if isinstance(stmt, ast.ClassDef):
                yield from stmt.bases
            continue
        yield stmt


@cache
def parse(name: str) -> Module | None:
    path = module_path(name)
    if path is None:
        return None
    tree = parse_source(path)
    module = Module(name, path, tree)
    module.units.append(Unit(name, "", "module", list(_top_level(tree.body))))
    for stmt in tree.body:
        if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef):
            module.units.append(Unit(name, stmt.name, "function", [stmt]))
        elif isinstance(stmt, ast.ClassDef):
            module.units.append(Unit(name, stmt.name, "class", list(_top_level(stmt.body))))
            for item in stmt.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                    module.units.append(Unit(name, item.name, "method", [item], owner=stmt.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("aws_lambda_powertools"):
            module.powertools.update(alias.asname or alias.name for alias in node.names)
    return module


Dead = Callable[[Unit, ast.If], bool]


def _never(unit: Unit, node: ast.If) -> bool:
    return False


def _walk(unit: Unit, dead: Dead = _never) -> Iterable[ast.AST]:
    """Every node of the unit, leaving out ``if TYPE_CHECKING:`` blocks and blocks ``dead`` rules out."""
    full = unit.walked
    if full is None:
        full = unit.walked = list(_walk_pruned(unit, _never))
    if dead is _never or not any(isinstance(node, ast.If) and dead(unit, node) for node in full):
        return full
    return list(_walk_pruned(unit, dead))


def _walk_pruned(unit: Unit, dead: Dead) -> Iterator[ast.AST]:
    stack = list(unit.nodes)
    while stack:
        node = stack.pop()
        if _type_checking(node):
            continue
        yield node
        if isinstance(node, ast.If) and dead(unit, node):
            stack.append(node.test)
            stack.extend(node.orelse)
            continue
        stack.extend(ast.iter_child_nodes(node))


def imports_of(unit: Unit, dead: Dead = _never) -> set[str]:
    """Modules of ours the unit imports, with their packages (importing a.b.c runs a, a.b and a.b.c)."""
    out: set[str] = set()
    package = unit.module if (module_path(unit.module) or Path()).name == "__init__.py" else unit.module.rpartition(".")[0]
    for node in _walk(unit, dead):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                candidate = ".".join(parts[:i])
                if module_path(candidate) is not None:
                    out.add(candidate)
    return out


def names_of(unit: Unit, dead: Dead = _never) -> tuple[set[str], set[str]]:
    """The bare names and the attribute names the unit mentions: what it may call, construct or pass on."""
    bare: set[str] = set()
    attributes: set[str] = set()
    for node in _walk(unit, dead):
        if isinstance(node, ast.Name):
            bare.add(node.id)
        elif isinstance(node, ast.Attribute):
            attributes.add(node.attr)
    return bare, attributes


class Reach:
    """The modules a handler loads and the units it can run, by imports and names, to a fixed point.

    Functions and classes are reached by a bare or an attribute name (``receive``, ``edge.receive``);
    methods only by an attribute name (``self._db``, ``store.current``), so a builtin such as
    ``all()`` does not reach a method called ``all``; a class's dunder methods come with the class.

    One data-flow rule keeps a shared class honest: a block ``if self.<attr>:`` in a class whose
    ``__init__`` sets ``self.<attr>`` from a parameter defaulting to None is dead unless reachable
    code constructs the class with that keyword (``SqsStage(..., queue_url_env="CRM_QUEUE_URL")``
    turns the crm stage's retry pacing on; route never passes it, so route never paces).
    """

    def __init__(self, handler_module: str, handler: str) -> None:
        self.loaded: dict[str, Module] = {}
        self.reached: list[Unit] = []
        self.enabled: set[tuple[str, str]] = set()  # (class name, keyword) passed by reachable code
        self.options: dict[tuple[str, str, str], str] = {}  # (module, class, attr) -> the __init__ parameter
        seen: set[int] = set()
        seed = Unit(handler_module, "", "module", [ast.Import(names=[ast.alias(handler_module)])])
        for name in imports_of(seed):
            self._load(name)
        bare: set[str] = {handler}
        attributes: set[str] = set()
        classes: set[tuple[str, str]] = set()
        read: set[int] = set()  # reached units whose names are counted (again when a keyword turns code on)
        changed = True
        while changed:
            changed = False
            enabled = self._switches()
            for unit in self.reached:
                if id(unit) in read:
                    continue
                read.add(id(unit))
                b, a = names_of(unit, self.dead)
                bare |= b
                attributes |= a
                self.enabled |= self._keywords(unit)
                if unit.kind == "class":
                    classes.add((unit.module, unit.name))
                for name in imports_of(unit, self.dead):
                    self._load(name)
            if self._switches() != enabled:  # code behind an optional keyword came alive: read everything again
                read.clear()
                changed = True
            for module in list(self.loaded.values()):
                for unit in module.units:
                    if id(unit) in seen:
                        continue
                    if unit.kind == "module":
                        take = True
                    elif unit.kind in ("function", "class"):
                        take = unit.name in bare or unit.name in attributes
                    else:
                        dunder = unit.name.startswith("__") and unit.name.endswith("__")
                        take = unit.name in attributes or (dunder and (unit.module, unit.owner or "") in classes)
                    if take:
                        seen.add(id(unit))
                        self.reached.append(unit)
                        changed = True

    def _load(self, name: str) -> None:
        if name in self.loaded:
            return
        module = parse(name)
        if module is None:
            return
        self.loaded[name] = module
        for unit in module.units:
            if unit.kind == "method" and unit.name == "__init__":
                function = unit.nodes[0]
                assert isinstance(function, ast.FunctionDef)
                args = function.args
                optional = {
                    a.arg
                    for a, d in zip(args.kwonlyargs, args.kw_defaults, strict=True)
                    if isinstance(d, ast.Constant) and d.value is None
                }
                positional = args.args[len(args.args) - len(args.defaults) :]
                optional |= {
                    a.arg
                    for a, d in zip(positional, args.defaults, strict=True)
                    if isinstance(d, ast.Constant) and d.value is None
                }
                for node in ast.walk(function):
                    if (
                        isinstance(node, ast.Assign)
                        and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Attribute)
                        and isinstance(node.targets[0].value, ast.Name)
                        and node.targets[0].value.id == "self"
                        and isinstance(node.value, ast.Name)
                        and node.value.id in optional
                    ):
                        self.options[(unit.module, unit.owner or "", node.targets[0].attr)] = node.value.id

    def _switches(self) -> set[tuple[str, str]]:
        """The optional keywords that turn guarded code on and that reachable code passes."""
        return {(owner, parameter) for (_, owner, _), parameter in self.options.items()} & self.enabled

    @staticmethod
    def _keywords(unit: Unit) -> set[tuple[str, str]]:
        out = set()
        for node in _walk(unit):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
                name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
                for keyword in node.keywords:
                    if keyword.arg and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None):
                        out.add((name, keyword.arg))
        return out

    def dead(self, unit: Unit, node: ast.If) -> bool:
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot):
            test = test.left
        if not (isinstance(test, ast.Attribute) and isinstance(test.value, ast.Name) and test.value.id == "self"):
            return False
        parameter = self.options.get((unit.module, unit.owner or "", test.attr))
        return parameter is not None and (unit.owner or "", parameter) not in self.enabled


class Derivation:
    """The IAM actions reachable code needs, with where each comes from."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach
        self.loaded, self.reached = reach.loaded, reach.reached
        self.actions: dict[str, set[str]] = {}  # action -> where
        self.problems: list[str] = []
        self.returns: dict[str, str] = {}  # function/property name -> service of the client it returns
        self.attributes: dict[str, str] = {}  # self.<attr> -> service
        self.utilities: dict[str, str] = {}  # self.<attr> or local -> Powertools class
        every_unit = [u for m in self.loaded.values() for u in m.units]
        for _ in range(2):  # a function returning a property that returns a client, in any order
            for unit in every_unit:
                self._bindings(unit)
        for unit in self.reached:
            self._calls(unit)

    def need(self, actions: Iterable[str], where: str) -> None:
        for action in actions:
            self.actions.setdefault(action, set()).add(where)

    @staticmethod
    def _client_call(node: ast.AST) -> tuple[bool, str | None]:
        """Is ``node`` a ``client(...)`` call of ours, and for which service (None: not a literal)?"""
        if not isinstance(node, ast.Call):
            return False, None
        func = node.func
        named = (isinstance(func, ast.Name) and func.id == "client") or (
            isinstance(func, ast.Attribute)
            and func.attr == "client"
            and isinstance(func.value, ast.Name)
            and func.value.id == "clients"
        )
        if not named:
            return False, None
        if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            return True, node.args[0].value
        return True, None

    def service_of(self, node: ast.AST, local: dict[str, str]) -> str | None:
        is_client, service = self._client_call(node)
        if is_client:
            return service
        if isinstance(node, ast.Name):
            return local.get(node.id)
        if isinstance(node, ast.Attribute):
            return self.attributes.get(node.attr) or self.returns.get(node.attr)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute):
            name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            return self.returns.get(name)
        return None

    def _bindings(self, unit: Unit) -> None:
        """Functions and properties that return a client; attributes bound to a client or a Powertools utility."""
        for node in _walk(unit):
            if isinstance(node, ast.Return) and node.value is not None and unit.kind in ("function", "method"):
                service = self.service_of(node.value, {})
                if service:
                    self.returns[unit.name] = service
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target, value = node.targets[0], node.value
                service = self.service_of(value, {})
                key = target.attr if isinstance(target, ast.Attribute) else None
                if key and service:
                    self.attributes[key] = service
                if isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and value.func.id in TRACKED_UTILITIES:
                    name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", None)
                    if name:
                        self.utilities[name] = value.func.id

    def _calls(self, unit: Unit) -> None:
        module = self.loaded[unit.module]
        where = f"{unit.module}:{(unit.owner + '.') if unit.owner else ''}{unit.name or '<module>'}"
        local: dict[str, str] = {}
        for _ in range(2):  # a local bound to a local bound to a client
            for node in _walk(unit, self.reach.dead):
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    service = self.service_of(node.value, local)
                    if service:
                        local[node.targets[0].id] = service
        for node in _walk(unit, self.reach.dead):
            if isinstance(node, ast.Name) and node.id in module.powertools and node.id not in POWERTOOLS_NO_AWS:
                self.problems.append(f"{where} uses Powertools' {node.id}: add what it calls AWS for to POWERTOOLS")
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            if isinstance(func, ast.Name) and func.id in POWERTOOLS_CONSTRUCTED and func.id in module.powertools:
                self.need(POWERTOOLS_CONSTRUCTED[func.id], where)
            if not isinstance(func, ast.Attribute):
                continue
            receiver = func.value
            utility = self.utilities.get(receiver.attr if isinstance(receiver, ast.Attribute) else getattr(receiver, "id", ""))
            if utility:
                mapped = POWERTOOLS_METHODS.get((utility, func.attr))
                if mapped is None:
                    self.problems.append(f"{where} calls {utility}.{func.attr}: add what it calls AWS for to POWERTOOLS_METHODS")
                else:
                    self.need(mapped, where)
                continue
            is_client, literal = self._client_call(receiver)
            service = self.service_of(receiver, local)
            if is_client and literal is None:
                self.problems.append(f"{where} calls {func.attr} on a client whose service is not a literal")
                continue
            if service is None or func.attr in CLIENT_METHODS_WITHOUT_CALL:
                continue
            if func.attr in ("get_paginator", "generate_presigned_url"):
                # A paginator calls its operation; a presigned URL is used with the signer's permission for its operation.
                argument = node.args[0] if node.args else None
                if not (isinstance(argument, ast.Constant) and isinstance(argument.value, str)):
                    self.problems.append(f"{where} builds a {service} {func.attr} whose operation is not a literal")
                    continue
                self.need({iam_action(service, argument.value)}, where)
            else:
                self.need(iam_actions(service, func.attr), where)


@cache
def _operations(service: str) -> tuple[str, dict[str, str]]:
    """botocore's own model of the service: its IAM prefix, and method name -> operation name."""
    import botocore.session
    from botocore import xform_name

    model = botocore.session.get_session().get_service_model(service)
    prefix = model.signing_name or model.endpoint_prefix
    return prefix, {xform_name(op): op for op in model.operation_names}


def iam_action(service: str, method: str) -> str:
    prefix, operations = _operations(service)
    if method not in operations:
        raise AssertionError(f"{service}.{method} is not an operation of {service} (botocore's model)")
    action = f"{prefix}:{operations[method]}"
    return IAM_ACTION_OF.get(action, action)


def iam_actions(service: str, method: str) -> frozenset[str]:
    if service == "s3" and method in S3_TRANSFER:
        return S3_TRANSFER[method]
    return frozenset({iam_action(service, method)})


def derive(handler_module: str, handler: str = "handler") -> Derivation:
    """The actions one handler's reachable code calls."""
    return Derivation(Reach(handler_module, handler))


# -- the template side --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    logical_id: str
    module: str
    handler: str
    environment: dict[str, Any]
    statements: list[dict[str, Any]]
    refused: list[str]  # policies the check cannot read (SAM policy templates, managed policies)


@cache
def template() -> dict[str, Any]:
    return load(TEMPLATE)


def functions() -> list[Function]:
    out = []
    for logical_id, resource in template()["Resources"].items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource["Properties"]
        code = str(props["CodeUri"]).strip("/").replace("/", ".")
        module_name, _, handler = str(props["Handler"]).rpartition(".")
        statements: list[dict[str, Any]] = []
        refused: list[str] = []
        for policy in props.get("Policies") or []:
            if isinstance(policy, dict) and set(policy) == {"Statement"}:
                statements.extend(policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]])
            else:
                refused.append(str(policy))
        env = ((props.get("Environment") or {}).get("Variables")) or {}
        out.append(Function(logical_id, f"{code}.{module_name}", handler, env, statements, refused))
    return out


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def granted(function: Function) -> dict[str, list[Any]]:
    """Action -> the resources it is allowed on."""
    out: dict[str, list[Any]] = {}
    for statement in function.statements:
        if statement.get("Effect") != "Allow":
            continue
        for action in as_list(statement.get("Action")):
            out.setdefault(str(action), []).extend(as_list(statement.get("Resource")))
    return out


def resources_named(value: Any) -> set[str]:
    """Logical ids a Ref / GetAtt / Sub names (``${X}``, ``${X.Arn}``), AWS pseudo-parameters left out."""
    if isinstance(value, dict):
        if "Ref" in value:
            return {str(value["Ref"])} - {""}
        if "Fn::GetAtt" in value:
            return {str(as_list(value["Fn::GetAtt"])[0])}
        if "Fn::Sub" in value:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return {m.split(".")[0] for m in re.findall(r"\$\{([^}]+)\}", text) if not m.startswith("AWS::")}
    return set()


SECRETS_ARN = re.compile(
    r"^arn:\$\{AWS::Partition\}:secretsmanager:\$\{AWS::Region\}:\$\{AWS::AccountId\}:secret:switchboard/\$\{AWS::StackName\}/"
)


def is_stack_secret(resource: Any) -> bool:
    return (
        isinstance(resource, dict) and isinstance(resource.get("Fn::Sub"), str) and bool(SECRETS_ARN.match(resource["Fn::Sub"]))
    )


# -- the checks ---------------------------------------------------------------------------------------
FUNCTIONS = functions()
ids = [f.logical_id for f in FUNCTIONS]


@cache
def derived(module: str, handler: str) -> Derivation:
    return derive(module, handler)


def test_every_function_is_found_and_read() -> None:
    assert len(FUNCTIONS) >= 6, ids
    for function in FUNCTIONS:
        assert module_path(function.module) is not None, f"{function.logical_id}: no source for {function.module}"
        assert function.refused == [], f"{function.logical_id}: policies this check cannot read: {function.refused}"


@pytest.mark.parametrize("function", FUNCTIONS, ids=ids)
def test_no_wildcard_actions_and_no_star_resources(function: Function) -> None:
    problems = []
    for action, resources in granted(function).items():
        if "*" in action or "?" in action:
            problems.append(f"wildcard action {action}")
        if "*" in resources and action not in STAR_RESOURCE_OK:
            problems.append(f'{action} on Resource "*"')
    assert problems == [], f"{function.logical_id}: " + "; ".join(problems)


def mismatch_report(checked: Iterable[Function]) -> list[str]:
    """Per function: the actions the code calls that the policy lacks (with where), and those granted but never called."""
    report = []
    for function in checked:
        found = derived(function.module, function.handler)
        needed, allowed = set(found.actions), set(granted(function))
        missing, unused = sorted(needed - allowed), sorted(allowed - needed)
        if found.problems:
            report.append(f"{function.logical_id}: cannot derive: " + "; ".join(sorted(set(found.problems))))
        if missing or unused:
            lines = [f"{function.logical_id} ({function.module}):"]
            lines += [f"  missing {a}  (called in {', '.join(sorted(found.actions[a]))})" for a in missing]
            lines += [f"  unused  {a}" for a in unused]
            report.append("\n".join(lines))
    return report


def test_policies_grant_exactly_what_the_code_calls() -> None:
    report = mismatch_report(FUNCTIONS)
    assert not report, "IAM policies in template.yaml differ from what the code calls:\n" + "\n".join(report)


def test_a_policy_that_differs_from_the_code_is_reported_per_function() -> None:
    edge = next(f for f in FUNCTIONS if f.logical_id == "WebhookLineFunction")
    statements: list[dict[str, Any]] = [
        {
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:Scan"],
            "Resource": {"Fn::GetAtt": ["SettingsTable", "Arn"]},
        },
        {"Effect": "Allow", "Action": ["secretsmanager:GetSecretValue"], "Resource": "*"},
    ]
    changed = Function(edge.logical_id, edge.module, edge.handler, edge.environment, statements, [])
    [report] = mismatch_report([changed])
    assert "missing sqs:SendMessage  (called in switchboard.aws.publisher:SqsPublisher.publish)" in report
    assert "unused  dynamodb:Scan" in report
    assert "GetItem" not in report and "GetSecretValue" not in report


@pytest.mark.parametrize("function", FUNCTIONS, ids=ids)
def test_every_resource_is_the_stacks_own_and_named_by_the_functions_environment(function: Function) -> None:
    resources = template()["Resources"]
    env_names = set().union(*(resources_named(v) for v in function.environment.values())) if function.environment else set()
    problems = []
    for action, granted_on in granted(function).items():
        for resource in granted_on:
            if action.startswith("secretsmanager:"):
                if not is_stack_secret(resource):
                    problems.append(f"{action} on {resource}: not a secret under switchboard/${{AWS::StackName}}/")
                elif "SECRETS_PREFIX" not in function.environment:
                    problems.append(f"{action} on stack secrets, but the function has no SECRETS_PREFIX to name them")
                continue
            named = resources_named(resource)
            if not named or not named <= set(resources):
                problems.append(f"{action} on {resource}: not one of the template's resources")
            elif not named <= env_names:
                problems.append(
                    f"{action} on {sorted(named)}: not named by the function's environment, so its code cannot reach it"
                )
    assert problems == [], f"{function.logical_id}:\n  " + "\n  ".join(problems)


# -- the derivation itself, on code written for the purpose (so a wrong derivation cannot pass silently) --


def test_derivation_follows_reachable_code_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "functions" / "probe"
    package.mkdir(parents=True)
    (tmp_path / "functions" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "from __future__ import annotations\n"
        "from typing import TYPE_CHECKING\n"
        "from switchboard.aws.clients import client\n"
        "from aws_lambda_powertools.utilities.parameters import SecretsProvider\n"
        "if TYPE_CHECKING:\n"
        "    from functions.probe import unused_module\n"
        "class Store:\n"
        "    def __init__(self) -> None:\n"
        "        self._secrets = SecretsProvider(boto3_client=client('secretsmanager'))\n"
        "    @property\n"
        "    def _db(self):\n"
        "        return client('dynamodb')\n"
        "    def load(self):\n"
        "        return self._db.get_item(TableName='t', Key={})\n"
        "    def never_called(self):\n"
        "        return self._db.delete_item(TableName='t', Key={})\n"
        "    def secret(self):\n"
        "        return self._secrets.get('x')\n"
        "def lazy():\n"
        "    from functions.probe import helper\n"
        "    return helper.go()\n"
        "def handler(event, context):\n"
        "    sqs = client('sqs')\n"
        "    sqs.send_message_batch(QueueUrl='q', Entries=[])\n"
        "    for page in client('dynamodb').get_paginator('query').paginate(TableName='t'):\n"
        "        pass\n"
        "    Store().load()\n"
        "    Store().secret()\n"
        "    return lazy()\n"
    )
    (package / "helper.py").write_text(
        "from switchboard.aws.clients import client\n"
        "def go():\n"
        "    return client('s3').put_object(Bucket='b', Key='k', Body=b'')\n"
    )
    (package / "unused_module.py").write_text(
        "from switchboard.aws.clients import client\ndef go():\n    return client('s3').delete_object(Bucket='b', Key='k')\n"
    )
    monkeypatch.setitem(PACKAGES, "functions", tmp_path / "functions")
    parse.cache_clear()
    try:
        found = derive("functions.probe.app")
    finally:
        parse.cache_clear()
    assert found.problems == []
    assert set(found.actions) == {
        "sqs:SendMessage",  # SendMessageBatch is authorised as SendMessage
        "dynamodb:Query",  # the paginator's operation
        "dynamodb:GetItem",  # through a property returning a client
        "secretsmanager:GetSecretValue",  # Powertools' SecretsProvider.get
        "s3:PutObject",  # behind a lazy import in a reachable function
    }  # and not DeleteItem (never named) nor DeleteObject (a TYPE_CHECKING import only)


def test_an_unknown_powertools_utility_is_a_problem_not_a_silent_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "functions" / "probe2"
    package.mkdir(parents=True)
    (tmp_path / "functions" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "app.py").write_text(
        "from aws_lambda_powertools.utilities.parameters import SSMProvider\n"
        "PROVIDER = SSMProvider()\n"
        "def handler(event, context):\n"
        "    return PROVIDER.get('/x')\n"
    )
    monkeypatch.setitem(PACKAGES, "functions", tmp_path / "functions")
    parse.cache_clear()
    try:
        found = derive("functions.probe2.app")
    finally:
        parse.cache_clear()
    assert any("SSMProvider" in problem for problem in found.problems), found.problems
