"""Checks that an exported graph is valid ONNX, matches the contract, and parses in TensorRT 10.

What TensorRT's ONNX parser accepts is taken from its support matrix, onnx/onnx-tensorrt
``docs/operators.md`` (TensorRT 10: opsets 9 to 20 for 10.0, 9 to 24 for 10.15). The
operator set below is the part of that matrix our graphs use, every entry marked supported
("Y"); a new operator in an export (another model size, a torch upgrade) fails here by
name, before anyone builds an engine, and is added only after checking the matrix. The
restrictions the matrix states for operators we use are checked too:

* ``Resize``: modes ``nearest``/``linear`` only, no antialiasing, and the listed
  coordinate transformation modes (which is why image preprocessing is not in a graph);
* reductions, ``Squeeze``/``Unsqueeze``: ``axes`` must be a build-time constant.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import TensorProto

from sam2_ros.backends.contract import GraphSpec
from sam2_ros.errors import UserError

MIN_OPSET = 17  # LayerNormalization (one fused op instead of a decomposed mean/var)
MAX_OPSET = 20  # the newest opset TensorRT 10.0's parser accepts

#: Operators our graphs use, each supported by TensorRT 10's ONNX parser (docs/operators.md).
TRT10_OPS = frozenset(
    {
        "Add",
        "And",
        "Cast",
        "Concat",
        "Constant",
        "ConstantOfShape",
        "Conv",
        "ConvTranspose",
        "Cos",
        "Div",
        "Equal",
        "Erf",
        "Expand",
        "Gather",
        "GatherND",
        "Gemm",
        "Greater",
        "Identity",
        "IsNaN",
        "LayerNormalization",
        "LessOrEqual",
        "MatMul",
        "MaxPool",
        "Mul",
        "Pad",
        "Pow",
        "ReduceMean",
        "Relu",
        "Reshape",
        "Resize",
        "Shape",
        "Sigmoid",
        "Sin",
        "Slice",
        "Softmax",
        "Split",  # EdgeTAM's perceiver (to_kv(...).chunk(2)); matrix: Y, FP32/FP16/INT32/BOOL
        "Sqrt",
        "Squeeze",
        "Sub",
        "Transpose",
        "Unsqueeze",
        "Where",
    }
)
RESIZE_MODES = frozenset({"nearest", "linear"})
RESIZE_COORDINATE_MODES = frozenset(
    {"half_pixel", "pytorch_half_pixel", "tf_half_pixel_for_nn", "asymmetric", "align_corners"}
)
#: Operators whose ``axes`` input (index 1) TensorRT needs as a build-time constant.
CONSTANT_AXES_OPS = frozenset({"ReduceMean", "Squeeze", "Unsqueeze"})
COMPLEX_TYPES = frozenset({TensorProto.COMPLEX64, TensorProto.COMPLEX128})
DTYPE_NAMES = {
    TensorProto.FLOAT: "float32",
    TensorProto.INT64: "int64",
    TensorProto.INT32: "int32",
    TensorProto.BOOL: "bool",
    TensorProto.FLOAT16: "float16",
}


class OnnxCheckError(UserError, ValueError):
    """An exported graph that TensorRT would reject or that breaks the graph contract."""


def check_graph(path: str | Path, spec: GraphSpec) -> None:
    """Run every check on the graph file ``path``; raise :class:`OnnxCheckError` listing all problems."""
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as exc:
        raise OnnxCheckError(f"{path.name}: invalid ONNX: {exc}") from exc
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    problems = check_opset(model) + check_io(model, spec) + check_no_complex(model) + check_operators(model)
    if problems:
        raise OnnxCheckError(f"{path.name} fails {len(problems)} check(s):\n  " + "\n  ".join(problems))


def check_opset(model: onnx.ModelProto) -> list[str]:
    versions = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not versions:
        return ["no default-domain opset import"]
    v = versions[0]
    if not MIN_OPSET <= v <= MAX_OPSET:
        return [f"opset {v} is outside {MIN_OPSET}..{MAX_OPSET} (TensorRT 10 parses up to {MAX_OPSET})"]
    return []


def _dims(value: onnx.ValueInfoProto) -> tuple[int | str, ...]:
    """A value's shape, dimensions as ints or their symbolic names ("?" for unknown)."""
    return tuple(
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in value.type.tensor_type.shape.dim
    )


def check_io(model: onnx.ModelProto, spec: GraphSpec) -> list[str]:
    """Inputs and outputs: the contract's names, dtypes and shapes, static except ``B``/``N``."""
    problems = []
    for kind, values, expected in (
        ("input", model.graph.input, spec.inputs),
        ("output", model.graph.output, spec.outputs),
    ):
        names = [v.name for v in values]
        if names != [t.name for t in expected]:
            problems.append(f"{kind}s are {names}, the contract says {[t.name for t in expected]}")
            continue
        for value, want in zip(values, expected):
            dims = _dims(value)
            dynamic = [d for d in dims if isinstance(d, str) and d not in spec.dynamic_dims]
            if dynamic:
                problems.append(
                    f"{kind} {value.name} has dynamic dims {dynamic} {dims}; only "
                    f"{sorted(spec.dynamic_dims)} may be dynamic"
                )
            elif dims != tuple(want.shape):
                problems.append(f"{kind} {value.name} has shape {dims}, the contract says {want.shape}")
            dtype = DTYPE_NAMES.get(value.type.tensor_type.elem_type, str(value.type.tensor_type.elem_type))
            if dtype != want.dtype:
                problems.append(f"{kind} {value.name} is {dtype}, the contract says {want.dtype}")
    return problems


def _all_nodes(graph: onnx.GraphProto):
    """Every node, including those in subgraphs (If/Loop bodies)."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            for sub in [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs):
                yield from _all_nodes(sub)


def check_no_complex(model: onnx.ModelProto) -> list[str]:
    """No complex tensors anywhere (TensorRT has none): values, initializers, constants."""
    g = model.graph
    bad = [
        v.name
        for v in list(g.input) + list(g.output) + list(g.value_info)
        if v.type.tensor_type.elem_type in COMPLEX_TYPES
    ]
    bad += [t.name for t in g.initializer if t.data_type in COMPLEX_TYPES]
    bad += [
        n.name
        for n in _all_nodes(g)
        if n.op_type == "Constant"
        and any(a.t.data_type in COMPLEX_TYPES for a in n.attribute if a.type == onnx.AttributeProto.TENSOR)
    ]
    return [f"complex tensors: {bad}"] if bad else []


def check_operators(model: onnx.ModelProto) -> list[str]:
    """Only operators TensorRT 10 parses, within the restrictions its matrix states."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in _all_nodes(model.graph) if n.op_type == "Constant" for o in n.output}
    unsupported: dict[str, list[str]] = {}
    problems = []
    for node in _all_nodes(model.graph):
        op = node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"
        if op not in TRT10_OPS:
            unsupported.setdefault(op, []).append(node.name)
            continue
        if op == "Resize":
            problems += _resize_problems(node)
        if op in CONSTANT_AXES_OPS and len(node.input) > 1 and node.input[1] and node.input[1] not in constants:
            problems.append(f"{op} node {node.name!r}: axes input {node.input[1]!r} is not a constant")
    if unsupported:
        listed = ", ".join(
            f"{op} (e.g. node {names[0]!r}, {len(names)} node(s))" for op, names in sorted(unsupported.items())
        )
        problems.insert(0, f"operators not in the TensorRT 10 set: {listed}")
    return problems


def _resize_problems(node: onnx.NodeProto) -> list[str]:
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def text(name: str, default: str) -> str:
        value = attrs.get(name, default)
        return value.decode() if isinstance(value, bytes) else value

    problems = []
    mode = text("mode", "nearest")
    if mode not in RESIZE_MODES:
        problems.append(f"Resize node {node.name!r}: mode {mode!r} (TensorRT: {sorted(RESIZE_MODES)})")
    coord = text("coordinate_transformation_mode", "half_pixel")
    if coord not in RESIZE_COORDINATE_MODES:
        problems.append(f"Resize node {node.name!r}: coordinate_transformation_mode {coord!r} is unsupported")
    if attrs.get("antialias", 0):
        problems.append(f"Resize node {node.name!r}: antialias (TensorRT: antialiasing is not supported)")
    return problems
