"""The exported model's archive, checked before torch deserialises anything in it.

torch.export.load runs code from a .pt2 when the archive asks it to: it unpickles weights and
constants whose config says use_pickle, custom and opaque objects, and the sample inputs (with a
fallback to a full unpickle when the safe one fails); it loads compiled AOTInductor libraries;
and it hands every shape expression to sympy.sympify, which evaluates it as Python. Any of them
would run the agent's code in the scorer, where it could print a score line or copy the split.

So the archive is opened with zipfile first and held to what torch.export.save writes for one
program: the known entries, each once, stored (not compressed), regular files under one root
folder, no more bytes declared than the file holds; weights and constants raw tensor bytes that
their configs point at (use_pickle false); shape expressions plain sympy constructors; sample
inputs a torch.save of tensors whose pickle imports only tensor rebuild functions, storage types
and dtypes. torch's own zip reader must see the same entries and bytes, and torch then loads those
checked bytes, with weights_only forced on every torch.load it makes.
"""

from __future__ import annotations

import ast
import contextlib
import io
import json
import os
import pickletools
import re
import stat
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import torch

MAX_BYTES = 4 * 2**30  # larger archives are refused before they are read
MAX_ENTRIES = 10_000
MAX_TEXT = 64  # bytes of a small text entry (format, version, byte order)
MAX_EXPR = 10_000  # characters of one shape expression
PICKLE_SCAN = 2**20  # leading bytes of a raw tensor payload checked for a pickle stream
ROOT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")  # the one top folder torch's writer puts everything in
TEXT = re.compile(rb"[ -~]*\n?")
ZIP_MAGIC = b"PK\x03\x04"  # a torch.save archive
PROTOCOLS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")  # how pickle protocols 2-5 begin

# What torch.export.save writes for one program (names from torch/export/pt2_archive/constants.py):
# the name under the root folder (a regex) -> its kind. Anything else (AOTInductor libraries, extra
# files, custom or opaque objects, legacy pickled weights) is refused.
PROGRAM_ENTRIES = {
    r"archive_format": "text", r"archive_version": "text", r"\.data/version": "text",
    r"\.data/serialization_id": "text", r"byteorder": "text",
    r"models/model\.json": "program",
    r"data/weights/model_weights_config\.json": "config", r"data/constants/model_constants_config\.json": "config",
    r"data/weights/weight_\d+": "tensor", r"data/constants/tensor_\d+": "tensor",
    r"data/sample_inputs/model\.pt": "sample inputs",
}
PROGRAM_REQUIRED = ("archive_format", "archive_version", "models/model.json", "data/weights/model_weights_config.json",
                    "data/constants/model_constants_config.json", "data/sample_inputs/model.pt")
FIXED_TEXT = {"archive_format": b"pt2", "archive_version": b"0"}
PAYLOAD_KEYS = {"path_name", "is_param", "use_pickle", "tensor_meta"}  # one entry of a weights/constants config
SAMPLE_INPUTS = "data/sample_inputs/model.pt"

# What torch.save writes (its zip format): the sample inputs are one.
SAVED_ENTRIES = {
    r"data\.pkl": "pickle", r"\.format_version": "text", r"\.storage_alignment": "text", r"byteorder": "text",
    r"version": "text", r"\.data/version": "text", r"\.data/serialization_id": "text", r"data/\d+": "storage",
}
SAVED_REQUIRED = ("data.pkl",)

# The pickle of saved tensors: plain data, the rebuild function called on storages, nothing else.
PICKLE_OPS = frozenset({
    "PROTO", "FRAME", "STOP", "MARK", "POP", "POP_MARK", "DUP", "NONE", "NEWTRUE", "NEWFALSE", "INT", "BININT",
    "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT", "UNICODE", "BINUNICODE",
    "SHORT_BINUNICODE", "BINUNICODE8", "EMPTY_TUPLE", "TUPLE", "TUPLE1", "TUPLE2", "TUPLE3", "EMPTY_LIST",
    "LIST", "APPEND", "APPENDS", "EMPTY_DICT", "DICT", "SETITEM", "SETITEMS", "PUT", "BINPUT", "LONG_BINPUT",
    "MEMOIZE", "GET", "BINGET", "LONG_BINGET", "GLOBAL", "REDUCE", "BINPERSID"
})
SAFE_GLOBALS = re.compile(r"torch\._utils _rebuild_tensor_v[23]|collections OrderedDict|torch [A-Z][A-Za-z0-9]*Storage"
                          r"|torch\.storage UntypedStorage")  # and torch's dtypes (torch uint16): see safe_global()
IMPORT_OPS = frozenset({"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "EXT1", "EXT2", "EXT4"})

# Shape expressions as torch writes them (sympy's srepr): these constructors, these names, and strings
# that are a symbol's name or a number. No attribute, no subscript, no other call.
SYMPY_CALLS = frozenset({
    "Symbol", "Integer", "Rational", "Float", "Add", "Mul", "Pow", "Mod", "Max", "Min", "Abs", "floor",
    "ceiling", "Equality", "Unequality", "StrictLessThan", "LessThan", "StrictGreaterThan", "GreaterThan",
    "And", "Or", "Not", "Piecewise", "ExprCondPair", "FloorDiv", "ModularIndexing", "Where", "PythonMod",
    "CleanDiv", "CeilToInt", "FloorToInt", "CeilDiv", "LShift", "RShift", "PowByNatural", "FloatPow",
    "FloatTrueDiv", "IntTrueDiv", "IsNonOverlappingAndDenseIndicator", "TruncToFloat", "TruncToInt",
    "RoundToInt", "RoundDecimal", "ToFloat", "Identity"
})
SYMPY_NAMES = SYMPY_CALLS | {"true", "false", "oo", "zoo", "nan"}
SYMPY_STRING = re.compile(r"[A-Za-z][A-Za-z0-9_]*|[-+]?[0-9.]+(?:e[-+]?[0-9]+)?")


class UnsafeArchive(ValueError):
    """The archive is not what torch.export.save writes for a program; the message says what is wrong."""


def load(path: Path) -> torch.export.ExportedProgram:
    """The exported program at `path`, deserialised only after its archive passed every check."""
    size = path.stat().st_size
    if size > MAX_BYTES:
        raise UnsafeArchive(f"the archive has {size} bytes, more than the {MAX_BYTES} allowed")
    data = path.read_bytes()
    check_program(data)
    with weights_only():
        return torch.export.load(io.BytesIO(data))  # the bytes just checked, not the file again


@contextlib.contextmanager
def weights_only() -> Iterator[None]:
    """Every torch.load in the block is weights_only, even one that asks for weights_only=False."""
    saved = {k: os.environ.pop(k, None) for k in ("TORCH_FORCE_WEIGHTS_ONLY_LOAD", "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")}
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None)
            if value is not None:
                os.environ[key] = value


def check_program(data: bytes) -> None:
    """Refuse (UnsafeArchive) anything torch.export.save of one program would not have written."""
    read, kinds = members(data, PROGRAM_ENTRIES, PROGRAM_REQUIRED, "the archive")
    for name, kind in kinds.items():
        if kind == "text":
            check_text(read(name), name, FIXED_TEXT.get(name))
    check_expressions(json_of(read("models/model.json"), "models/model.json"))
    pointed = set()
    for config in (n for n, kind in kinds.items() if kind == "config"):
        pointed |= payloads(json_of(read(config), config), config, kinds)
    tensors = {n for n, kind in kinds.items() if kind == "tensor"}
    if tensors != pointed:
        raise UnsafeArchive(f"the archive holds tensor payloads no config points at: {sorted(tensors - pointed)[:5]}")
    for name in sorted(tensors):
        if pickled(read(name)):
            raise UnsafeArchive(f"{name} holds a pickle, not raw tensor bytes")
    check_saved(read(SAMPLE_INPUTS), SAMPLE_INPUTS)


def members(data: bytes, rules: dict[str, str], required: tuple[str, ...],
            what: str) -> tuple[Callable[[str], bytes], dict[str, str]]:
    """(a reader of entries by name, name under the root -> kind) of a zip archive as torch's writer makes it."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as e:
        raise UnsafeArchive(f"{what} is not a zip archive as torch writes it ({e})") from None
    if len(infos) > MAX_ENTRIES:
        raise UnsafeArchive(f"{what} has {len(infos)} entries, more than the {MAX_ENTRIES} allowed")
    names = [i.filename for i in infos]
    twice = [n for n, count in Counter(names).items() if count > 1]
    if twice:
        raise UnsafeArchive(f"{what} holds {twice[0]!r} twice")
    root = names[0].partition("/")[0] if names else ""
    if not ROOT.fullmatch(root):
        raise UnsafeArchive(f"{what} has no root folder torch would write (first entry {names[:1]})")
    kinds = {}
    for info in infos:
        name = info.filename.removeprefix(root + "/") if info.filename.startswith(root + "/") else None
        kind = next((k for rx, k in rules.items() if name is not None and re.fullmatch(rx, name)), None)
        if kind is None:
            raise UnsafeArchive(f"{what} holds {info.filename!r}, which torch.export.save does not write for a program "
                                "(only the program, its raw weights and constants, and its sample inputs are accepted)")
        file_type = stat.S_IFMT(info.external_attr >> 16)  # 0 when the writer recorded none (torch's does not)
        if file_type not in (0, stat.S_IFREG):
            raise UnsafeArchive(f"{what}: {info.filename!r} is not a regular file (a symlink or a special file)")
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & 1 or info.file_size != info.compress_size:
            raise UnsafeArchive(f"{what}: {info.filename!r} is compressed or encrypted (torch stores entries as is)")
        kinds[name] = kind
    declared = sum(i.file_size for i in infos)
    if declared > len(data):
        raise UnsafeArchive(f"{what} declares {declared} bytes of entries in a file of {len(data)}")
    missing = [n for n in required if n not in kinds]
    if missing:
        raise UnsafeArchive(f"{what} lacks {missing}: save the model with torch.export.save")
    same_for_torch(data, archive, root, kinds, what)
    return (lambda name: archive.read(f"{root}/{name}")), kinds


def same_for_torch(data: bytes, archive: zipfile.ZipFile, root: str, kinds: dict[str, str], what: str) -> None:
    """torch's zip reader (the one torch.export.load uses) sees the entries and bytes zipfile saw, no others."""
    try:
        reader = torch._C.PyTorchFileReader(io.BytesIO(data))
        seen = set(reader.get_all_records())
        if seen != set(kinds):
            raise UnsafeArchive(f"{what}: torch's zip reader sees other entries than zipfile: "
                                f"{sorted(seen ^ set(kinds))[:5]}")
        for name, kind in kinds.items():
            size = archive.getinfo(f"{root}/{name}").file_size
            same = reader.get_record_size(name) == size
            if kind not in ("tensor", "storage"):  # what decides how the rest is read: byte for byte
                same = same and reader.get_record(name) == archive.read(f"{root}/{name}")
            if not same:
                raise UnsafeArchive(f"{what}: torch's zip reader reads {name!r} differently from zipfile")
    except RuntimeError as e:
        raise UnsafeArchive(f"{what}: torch's zip reader refuses it ({str(e).splitlines()[0][:200]})") from None


def check_text(raw: bytes, name: str, expected: bytes | None) -> None:
    if len(raw) > MAX_TEXT or not TEXT.fullmatch(raw) or expected is not None and raw != expected:
        want = f"{expected!r}" if expected is not None else f"a short line of text (at most {MAX_TEXT} bytes)"
        raise UnsafeArchive(f"{name} holds {raw[:40]!r}, not {want}")


def json_of(raw: bytes, name: str) -> object:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise UnsafeArchive(f"{name} is not JSON ({str(e)[:200]})") from None


def payloads(config: object, name: str, kinds: dict[str, str]) -> set[str]:
    """The tensor entries a weights or constants config points at; each must be raw bytes, never a pickle."""
    entries = config.get("config") if isinstance(config, dict) and set(config) == {"config"} else None
    if not isinstance(entries, dict):
        raise UnsafeArchive(f"{name} is not a payload config as torch.export.save writes it")
    folder, pointed = name.rpartition("/")[0], set()
    for fqn, meta in entries.items():
        if not isinstance(meta, dict) or set(meta) - PAYLOAD_KEYS or not isinstance(meta.get("tensor_meta"), dict):
            raise UnsafeArchive(f"{name}: the entry of {fqn!r} is not a raw tensor's (keys {PAYLOAD_KEYS})")
        if meta.get("use_pickle") is not False:
            raise UnsafeArchive(f"{name}: {fqn!r} asks to be unpickled (use_pickle); weights and constants must be "
                                "raw tensor bytes: export plain tensors (no tensor subclasses, no script objects)")
        target = f"{folder}/{meta.get('path_name')}"
        if kinds.get(target) != "tensor":
            raise UnsafeArchive(f"{name}: {fqn!r} points at {meta.get('path_name')!r}, which is not a tensor payload "
                                f"in {folder}/")
        pointed.add(target)
    return pointed


def pickled(payload: bytes) -> bool:
    """Whether raw tensor bytes are really a torch.save or pickle stream (a tripwire: raw bytes are never unpickled).

    A pickle from protocol 2 on begins with its PROTO opcode; an older one that imports anything
    names it. Either way its opcodes parse up to a STOP, which tensor data almost never does.
    """
    if payload.startswith(ZIP_MAGIC):
        return True
    try:
        with warnings.catch_warnings():  # tensor bytes read as a protocol-0 string warn about their escapes
            warnings.simplefilter("ignore")
            ops = {op.name for op, _, _ in pickletools.genops(payload[:PICKLE_SCAN])}
    except Exception:  # an invalid opcode or argument, or no STOP: not a pickle stream
        return False
    return payload[:2] in PROTOCOLS or bool(ops & IMPORT_OPS)


def check_saved(data: bytes, what: str) -> None:
    """A torch.save archive of tensors (the sample inputs): a pickle that builds data and rebuilds tensors, no more."""
    read, _ = members(data, SAVED_ENTRIES, SAVED_REQUIRED, what)
    try:
        for op, arg, _ in pickletools.genops(read("data.pkl")):
            if op.name not in PICKLE_OPS or op.name == "GLOBAL" and not safe_global(arg):
                found = f"imports {str(arg).replace(' ', '.')}" if op.name == "GLOBAL" else f"uses {op.name}"
                raise UnsafeArchive(f"{what}: its pickle {found}; sample inputs may hold only tensors, numbers, "
                                    "tuples, lists and dicts, pickled with torch.export.save's default protocol")
    except UnsafeArchive:
        raise
    except Exception as e:  # pickletools found no valid pickle stream
        raise UnsafeArchive(f"{what}: its pickle is not readable ({str(e)[:200]})") from None


def safe_global(name: str) -> bool:
    """A rebuild function, a storage type, OrderedDict, or a dtype (torch.save names one beside an untyped storage)."""
    module, _, attr = name.partition(" ")
    dtype = module == "torch" and attr.isidentifier() and isinstance(getattr(torch, attr, None), torch.dtype)
    return bool(SAFE_GLOBALS.fullmatch(name)) or dtype


def check_expressions(program: object) -> None:
    """Every shape expression torch will hand to sympy.sympify (which evaluates its text) is plain sympy."""
    stack = [program]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "expr_str" in node:
                check_expression(node["expr_str"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def check_expression(expr: object) -> None:
    refused = UnsafeArchive(f"models/model.json: the shape expression {str(expr)[:120]!r} is not one torch writes "
                            f"(sympy constructors {sorted(SYMPY_CALLS)[:4]}..., numbers and symbol names only)")
    if not isinstance(expr, str) or len(expr) > MAX_EXPR:
        raise refused
    try:
        tree = ast.parse(expr, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        raise refused from None
    for node in ast.walk(tree):
        value = getattr(node, "value", None)
        ok = (isinstance(node, (ast.Expression, ast.Load, ast.USub))
              or isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in SYMPY_CALLS
              or isinstance(node, ast.Name) and node.id in SYMPY_NAMES
              or isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub)
              or isinstance(node, ast.keyword) and node.arg is not None and SYMPY_STRING.fullmatch(node.arg)
              or isinstance(node, ast.Constant) and (isinstance(value, (int, float)) or isinstance(value, str)
                                                     and SYMPY_STRING.fullmatch(value) is not None))
        if not ok:
            raise refused
