"""Which layers of an fp16/bf16 engine stay in float32: planned on the ONNX graph, applied by name.

The plan (pure, no TensorRT): normalisations (``LayerNormalization`` and the
mean/variance/sqrt/divide chain of SAM's channel LayerNorm2d), softmaxes, the sine encodings
(sin/cos and the arithmetic that builds their angles) and the RoPE rotations (products with
constant cos/sin tables) -- :func:`fp32_nodes`.

Both builders pin the same layers, by name: ``python -m export engines`` through
:func:`constrain_fp32`, the generated trtexec script through ``--layerPrecisions`` and
``--layerOutputTypes``, which match exact layer names and silently skip names they cannot
find (``setLayerPrecisions`` in trtexec's ``sampleEngines.cpp``). So the one list both use,
:func:`pinned_layer_names`, holds only planned nodes that TensorRT's ONNX parser turns into
a layer of the node's own name. onnx-tensorrt (``ImporterContext::registerLayer``) names the
layer it registers for a node after the node (``getNodeName``); helper layers get
``ONNXTRT_*`` names, later layers of the same node a numbered suffix, and a ``Constant`` node
gives no layer at all. Left out as well: nodes whose inputs are all constants (they compute
constants, which TensorRT folds while building) and nodes without float outputs (shape
arithmetic has no float32 choice, and an exact trtexec match would force one on it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Ops always kept in float32 under fp16/bf16, with the reason recorded in engines.json.
FP32_OPS = {
    "LayerNormalization": "norm",
    "GroupNormalization": "norm",
    "InstanceNormalization": "norm",
    "Softmax": "softmax",
    "LogSoftmax": "softmax",
    "Sin": "sine",
    "Cos": "sine",
}
ARITH_OPS = frozenset({"Add", "Sub", "Mul", "Div", "Pow", "Neg", "Reciprocal"})
#: Ops that may build a sine encoding's angle: arithmetic, and the projection of random-Fourier encodings.
ANGLE_OPS = ARITH_OPS | {"MatMul", "Gemm"}
#: Ops that move or relabel data without arithmetic; walked through when tracing angles and tables.
PASS_OPS = frozenset({"Unsqueeze", "Squeeze", "Reshape", "Flatten", "Expand", "Cast", "Identity", "Transpose"})
ANGLE_DEPTH = 8  # nodes walked back from a sin/cos to find the arithmetic that builds its angle


@dataclass(frozen=True)
class Fp32Node:
    """An ONNX node whose TensorRT layers stay float32, and why (norm, softmax, sine, rope)."""

    name: str
    op: str
    reason: str
    outputs: tuple[str, ...]


class _Graph:
    """Producer/consumer lookups over an ONNX graph, and its constant tensors as numpy."""

    def __init__(self, graph) -> None:
        from onnx import helper, numpy_helper  # noqa: PLC0415 - optional extra (onnx), loaded only when used

        self._to_array, self._attr_value = numpy_helper.to_array, helper.get_attribute_value
        self.nodes = list(graph.node)
        self.producer = {o: n for n in self.nodes for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in self.nodes:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        self._inits = {t.name: t for t in graph.initializer}
        self._values: dict[str, Any] = {}

    def constant(self, name: str, depth: int = 4):
        """The value of tensor ``name`` if it is a constant (through data-movement ops), else None."""
        if name in self._values:
            return self._values[name]
        value = None
        init = self._inits.get(name)
        node = self.producer.get(name)
        if init is not None:  # external data (not loaded) counts as unknown
            value = None if init.data_location == init.EXTERNAL else self._to_array(init)
        elif node is not None and node.op_type == "Constant" and node.attribute:
            attr = self._attr_value(node.attribute[0])
            value = self._to_array(attr) if hasattr(attr, "raw_data") else np.asarray(attr)
        elif node is not None and node.op_type in PASS_OPS and depth > 0 and node.input:
            value = self.constant(node.input[0], depth - 1)
        self._values[name] = value
        return value

    def is_constant(self, name: str) -> bool:
        return self.constant(name) is not None


def _node(n, reason: str) -> Fp32Node:
    return Fp32Node(n.name, n.op_type, reason, tuple(n.output))


def _norm_chain(g: _Graph, sqrt) -> list:
    """SAM's LayerNorm2d: mean -> x-mean -> (.)^2 -> mean -> +eps -> sqrt -> divide; [] if not that."""
    add = g.producer.get(sqrt.input[0])
    if add is None or add.op_type != "Add":
        return []
    var = next((g.producer.get(i) for i in add.input if not g.is_constant(i)), None)
    if var is None or var.op_type != "ReduceMean":
        return []
    sq = g.producer.get(var.input[0])
    if sq is None or sq.op_type not in ("Pow", "Mul"):
        return []
    sub = g.producer.get(sq.input[0])
    if sub is None or sub.op_type != "Sub":
        return []
    mean = g.producer.get(sub.input[1])
    if mean is None or mean.op_type != "ReduceMean":
        return []
    divs = [c for c in g.consumers.get(sqrt.output[0], []) if c.op_type == "Div" and c.input[1] == sqrt.output[0]]
    return [mean, sub, sq, var, add, sqrt, *divs]


def _angle_chain(g: _Graph, trig) -> list:
    """The arithmetic nodes that compute a sin/cos argument (positions x frequencies, or a projection)."""
    found, frontier, seen = [], [trig.input[0]], set()
    for _ in range(ANGLE_DEPTH):
        nxt = []
        for name in frontier:
            n = g.producer.get(name)
            if n is None or id(n) in seen or n.op_type not in ANGLE_OPS | PASS_OPS:
                continue
            seen.add(id(n))
            if n.op_type in ANGLE_OPS:
                found.append(n)
            nxt += [i for i in n.input if i and not g.is_constant(i)]
        frontier = nxt
    return found


def _rotation(g: _Graph, combine) -> list:
    """RoPE: ``a*cos - b*sin`` / ``a*sin + b*cos`` with constant tables where cos^2 + sin^2 = 1."""
    muls, tables = [], []
    for i in combine.input:
        m = g.producer.get(i)
        if m is None or m.op_type != "Mul":
            return []
        consts = [g.constant(x) for x in m.input if g.is_constant(x)]
        if len(consts) != 1 or consts[0].ndim == 0 or consts[0].dtype.kind != "f":
            return []
        muls.append(m)
        tables.append(consts[0].astype(np.float64))
    a, b = tables
    if a.shape != b.shape or np.abs(a).max() > 1 + 1e-6 or not np.allclose(a * a + b * b, 1.0, atol=1e-4):
        return []
    return [*muls, combine]


def fp32_nodes(model) -> list[Fp32Node]:
    """The nodes of ``model`` (an ``onnx.ModelProto``) kept in float32 under fp16/bf16, in graph order."""
    g = _Graph(model.graph)
    picked: dict[int, Fp32Node] = {}

    def pick(nodes: Iterable, reason: str) -> None:
        for n in nodes:
            picked.setdefault(id(n), _node(n, reason))

    for n in g.nodes:
        reason = FP32_OPS.get(n.op_type)
        if reason:
            pick([n], reason)
        if n.op_type == "Sqrt":
            pick(_norm_chain(g, n), "norm")
        elif n.op_type in ("Sin", "Cos"):
            pick(_angle_chain(g, n), "sine")
        elif n.op_type in ("Sub", "Add") and len(n.input) == 2:
            pick(_rotation(g, n), "rope")
    order = {id(n): i for i, n in enumerate(g.nodes)}
    return [picked[k] for k in sorted(picked, key=order.__getitem__)]


#: ONNX element types TensorRT runs as float tensors (float32, float16, bfloat16; double becomes float32).
FLOAT_TYPES = frozenset({1, 10, 16, 11})


def _elem_types(model, needed: Iterable[str]) -> dict[str, int]:
    """ONNX element types of the graph's tensors; ONNX shape inference fills in any of ``needed`` not declared."""

    def declared(graph) -> dict[str, int]:
        types = {t.name: t.data_type for t in graph.initializer}
        for v in (*graph.input, *graph.value_info, *graph.output):
            if v.type.HasField("tensor_type"):
                types[v.name] = v.type.tensor_type.elem_type
        return types

    types = declared(model.graph)
    if any(n not in types for n in needed):
        from onnx import shape_inference  # noqa: PLC0415 - optional extra (onnx), loaded only when used

        try:
            types = {**declared(shape_inference.infer_shapes(model).graph), **types}
        except Exception:  # noqa: BLE001 - inference only adds knowledge; unknown types stay unpinned
            pass
    return types


def pinned_layer_names(model, nodes: list[Fp32Node]) -> tuple[str, ...]:
    """The names of the planned ``nodes`` that name a float layer after TensorRT parses ``model``.

    Left out, because no layer of that name and precision exists to pin: unnamed nodes,
    ``Constant`` nodes, names used by more than one node, nodes whose inputs are all
    constants, and nodes with non-float (or unknown) output types. Graph order.
    """
    g = _Graph(model.graph)
    counts = Counter(n.name for n in g.nodes)
    by_name = {n.name: n for n in g.nodes}
    types = _elem_types(model, [o for n in nodes for o in n.outputs if o])
    names = []
    for planned in nodes:
        node = by_name.get(planned.name)
        if not planned.name or node is None or counts[planned.name] != 1 or node.op_type == "Constant":
            continue
        if all(g.is_constant(i) for i in node.input if i):
            continue
        if not all(types.get(o) in FLOAT_TYPES for o in node.output if o):
            continue
        names.append(planned.name)
    return tuple(names)


def constrain_fp32(trt, network, names: Iterable[str]) -> list[str]:
    """Pin the layers called ``names`` to float32 (precision and output types); the names pinned.

    Exact layer names, as trtexec's ``--layerPrecisions``/``--layerOutputTypes`` match them,
    so both builders make the same engine. Layers with non-float outputs and constants are
    left alone (they have no float32 choice to make); names absent from the network are
    not pinned and so not returned.
    """
    wanted = set(names)
    floats = (trt.DataType.FLOAT, trt.DataType.HALF, trt.DataType.BF16)
    pinned = []
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.name not in wanted or layer.type in (trt.LayerType.CONSTANT, trt.LayerType.SHAPE):
            continue
        outs = [layer.get_output(k) for k in range(layer.num_outputs)]
        if not all(t.dtype in floats for t in outs):
            continue
        layer.precision = trt.DataType.FLOAT
        for k in range(layer.num_outputs):
            layer.set_output_type(k, trt.DataType.FLOAT)
        pinned.append(layer.name)
    return pinned


def network_layer_names(network) -> set[str]:
    """The names of a parsed ``INetworkDefinition``'s layers (what trtexec's name matching sees)."""
    return {network.get_layer(i).name for i in range(network.num_layers)}
