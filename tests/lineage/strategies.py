"""Hypothesis strategies for lineage values: refs, nodes and random DAGs."""

from __future__ import annotations

from hypothesis import strategies as st

from lineage import Edge, Node, NodeKind, NodeRef, Relation

names = st.text(min_size=1, max_size=20).filter(str.isprintable)
refs = st.builds(NodeRef, st.sampled_from(list(NodeKind)), names)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3),
    max_leaves=6,
)
attributes = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
hashes = st.none() | st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)


@st.composite
def dags(draw: st.DrawFn, max_nodes: int = 8, rich: bool = False) -> tuple[list[Node], list[Edge]]:
    """A random DAG: nodes in a hidden topological order, edges only from earlier to later nodes.

    ``rich`` draws arbitrary JSON attributes and hashes (slower); otherwise a small fixed-shape dict.
    """
    small_names = st.sampled_from(["a", "b", "c", "weather", "x:y", "flights.dep"])
    node_refs = draw(
        st.lists(st.builds(NodeRef, st.sampled_from(list(NodeKind)), small_names), unique=True, max_size=max_nodes)
    )
    if rich:
        nodes = [Node(ref, draw(hashes), draw(attributes)) for ref in node_refs]
    else:
        nodes = [Node(ref, None, {"rows": i}) for i, ref in enumerate(node_refs)]
    pairs = [(i, j) for i in range(len(nodes)) for j in range(i + 1, len(nodes))]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True)) if pairs else []
    edges = [Edge(node_refs[i], node_refs[j], draw(st.sampled_from(list(Relation)))) for i, j in chosen]
    return nodes, edges
