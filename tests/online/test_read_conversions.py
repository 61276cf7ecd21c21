"""The online read's shortcuts around Feast's converters give exactly what Feast gives.

``reads.python_value`` against ``feast_value_type_to_python_type`` on a stored value of every Feast
value kind (nulls, Float32, arrays, bytes, timestamps and the null-timestamp sentinel, big int64);
``reads.key_protos`` (Feast's conversion, once per value, then kept) against
``python_values_to_proto_values`` on every join-key type, called with overlapping batches.
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from feast.protos.feast.types.Value_pb2 import BoolList, BytesList, DoubleList, FloatList, Int64List, StringList
from feast.protos.feast.types.Value_pb2 import Value as ProtoValue
from feast.type_map import feast_value_type_to_python_type, python_values_to_proto_values
from feast.value_type import ValueType

from service.online import reads

STORED = [
    ProtoValue(),
    ProtoValue(double_val=1.1109999418258667),
    ProtoValue(double_val=float("nan")),
    ProtoValue(double_val=float("-inf")),
    ProtoValue(float_val=1.111),
    ProtoValue(float_val=float("nan")),
    ProtoValue(int64_val=2**63 - 1),
    ProtoValue(int64_val=-(2**63)),
    ProtoValue(int32_val=-(2**31)),
    ProtoValue(string_val=""),
    ProtoValue(string_val="EWR"),
    ProtoValue(bytes_val=b"\x00\xff"),
    ProtoValue(bool_val=False),
    ProtoValue(bool_val=True),
    ProtoValue(unix_timestamp_val=1367413200),
    ProtoValue(unix_timestamp_val=-(2**63)),
    ProtoValue(double_list_val=DoubleList(val=[1.5, float("nan")])),
    ProtoValue(float_list_val=FloatList(val=[1.111])),
    ProtoValue(int64_list_val=Int64List(val=[2**62, -1])),
    ProtoValue(string_list_val=StringList(val=["a", "b"])),
    ProtoValue(bytes_list_val=BytesList(val=[b"a"])),
    ProtoValue(bool_list_val=BoolList(val=[True, False])),
    ProtoValue(json_val='{"a": 1}'),
]


def typed(value: Any) -> Any:
    if isinstance(value, list | tuple | set):
        return (type(value).__name__, [typed(v) for v in value])
    if isinstance(value, float):  # by its spelling: NaN equal to NaN, -0.0 apart from 0.0
        return ("float", repr(value))
    return (type(value).__name__, value)


@pytest.mark.parametrize("proto", STORED, ids=lambda p: str(p.WhichOneof("val")))
def test_python_value_is_feasts_conversion(proto: ProtoValue) -> None:
    expected = feast_value_type_to_python_type(proto)
    assert typed(reads.python_value(proto, proto.WhichOneof("val"))) == typed(expected)


T0 = datetime(2013, 5, 1, 13, tzinfo=UTC)
KEYS: dict[ValueType, list[Any]] = {
    ValueType.STRING: ["EWR", "", "JFK", "EWR", "ünï"],
    ValueType.BYTES: [b"\x00", b"", b"abc", b"\x00"],
    ValueType.INT32: [0, -(2**31), 2**31 - 1, 7, 0],
    ValueType.INT64: [2**63 - 1, -(2**63), 2**53 + 1, 0, 2**63 - 1],
    ValueType.UNIX_TIMESTAMP: [T0, T0 + timedelta(seconds=1), datetime(1970, 1, 1, tzinfo=UTC), T0],
}


@pytest.mark.parametrize("vtype", list(KEYS), ids=str)
def test_key_protos_are_feasts_protos(vtype: ValueType) -> None:
    reads._KEY_PROTOS.clear()
    values = KEYS[vtype]
    # a first batch, then batches overlapping it (cached and new values mixed), then one value alone
    for batch in (values[:2], values, values[1:] + values[:1], values[2:3]):
        got = reads.key_protos(batch, vtype)
        want = python_values_to_proto_values(batch, vtype)
        assert [p.SerializeToString() for p in got] == [p.SerializeToString() for p in want], batch
