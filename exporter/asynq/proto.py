"""Asynq's protobuf messages (package `asynq`, proto3), built from descriptors at import time.

Asynq stores ServerInfo, SchedulerEntry, SchedulerEnqueueEvent, WorkerInfo and TaskMessage as
protobuf bytes. We build the message classes here from a FileDescriptorProto instead of shipping
protoc-generated code: generated `_pb2` modules are tied to the protoc/runtime version pair that
produced them, while descriptors built in Python work with any protobuf 4+ runtime and keep the
field numbers (the only thing that matters on the wire) readable next to Asynq's asynq.proto.
Only the fields the exporter or the tests use are declared; unknown fields are kept and ignored.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    timestamp_pb2,
)
from google.protobuf.message import DecodeError, Message

__all__ = [
    "DecodeError",
    "SchedulerEnqueueEvent",
    "SchedulerEntry",
    "ServerInfo",
    "TaskMessage",
    "WorkerInfo",
]

_F = descriptor_pb2.FieldDescriptorProto
_STRING, _BYTES, _INT32, _INT64, _BOOL, _MESSAGE = (
    _F.TYPE_STRING, _F.TYPE_BYTES, _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_BOOL, _F.TYPE_MESSAGE,
)
_TIMESTAMP = ".google.protobuf.Timestamp"

# name -> [(field name, number, type, type name or map entry, repeated)]
_MESSAGES: dict[str, list[tuple[str, int, int, str, bool]]] = {
    "TaskMessage": [
        ("type", 1, _STRING, "", False), ("payload", 2, _BYTES, "", False), ("id", 3, _STRING, "", False),
        ("queue", 4, _STRING, "", False), ("retry", 5, _INT32, "", False), ("retried", 6, _INT32, "", False),
        ("error_msg", 7, _STRING, "", False), ("timeout", 8, _INT64, "", False),
        ("deadline", 9, _INT64, "", False), ("unique_key", 10, _STRING, "", False),
        ("last_failed_at", 11, _INT64, "", False), ("retention", 12, _INT64, "", False),
        ("completed_at", 13, _INT64, "", False), ("group_key", 14, _STRING, "", False),
    ],
    "ServerInfo": [
        ("host", 1, _STRING, "", False), ("pid", 2, _INT32, "", False), ("server_id", 3, _STRING, "", False),
        ("concurrency", 4, _INT32, "", False), ("queues", 5, _MESSAGE, ".asynq.ServerInfo.QueuesEntry", True),
        ("strict_priority", 6, _BOOL, "", False), ("status", 7, _STRING, "", False),
        ("start_time", 8, _MESSAGE, _TIMESTAMP, False), ("active_worker_count", 9, _INT32, "", False),
    ],
    "WorkerInfo": [
        ("host", 1, _STRING, "", False), ("pid", 2, _INT32, "", False), ("server_id", 3, _STRING, "", False),
        ("task_id", 4, _STRING, "", False), ("task_type", 5, _STRING, "", False),
        ("task_payload", 6, _BYTES, "", False), ("queue", 7, _STRING, "", False),
        ("start_time", 8, _MESSAGE, _TIMESTAMP, False), ("deadline", 9, _MESSAGE, _TIMESTAMP, False),
    ],
    "SchedulerEntry": [
        ("id", 1, _STRING, "", False), ("spec", 2, _STRING, "", False), ("task_type", 3, _STRING, "", False),
        ("task_payload", 4, _BYTES, "", False), ("enqueue_options", 5, _STRING, "", True),
        ("next_enqueue_time", 6, _MESSAGE, _TIMESTAMP, False), ("prev_enqueue_time", 7, _MESSAGE, _TIMESTAMP, False),
    ],
    "SchedulerEnqueueEvent": [
        ("task_id", 1, _STRING, "", False), ("enqueue_time", 2, _MESSAGE, _TIMESTAMP, False),
    ],
}


def _file() -> descriptor_pb2.FileDescriptorProto:
    file = descriptor_pb2.FileDescriptorProto(
        name="honeydue_exporter/asynq.proto", package="asynq", syntax="proto3",
        dependency=["google/protobuf/timestamp.proto"],
    )
    for name, fields in _MESSAGES.items():
        msg = file.message_type.add(name=name)
        for field_name, number, type_, type_name, repeated in fields:
            field = msg.field.add(name=field_name, number=number, type=type_,
                                  label=_F.LABEL_REPEATED if repeated else _F.LABEL_OPTIONAL)
            if type_name:
                field.type_name = type_name
        if name == "ServerInfo":  # map<string, int32> queues
            entry = msg.nested_type.add(name="QueuesEntry")
            entry.options.map_entry = True
            entry.field.add(name="key", number=1, type=_STRING, label=_F.LABEL_OPTIONAL)
            entry.field.add(name="value", number=2, type=_INT32, label=_F.LABEL_OPTIONAL)
    return file


_POOL = descriptor_pool.DescriptorPool()
_POOL.AddSerializedFile(timestamp_pb2.DESCRIPTOR.serialized_pb)
_POOL.AddSerializedFile(_file().SerializeToString())


def _cls(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"asynq.{name}"))


TaskMessage: type[Message] = _cls("TaskMessage")
ServerInfo: type[Message] = _cls("ServerInfo")
WorkerInfo: type[Message] = _cls("WorkerInfo")
SchedulerEntry: type[Message] = _cls("SchedulerEntry")
SchedulerEnqueueEvent: type[Message] = _cls("SchedulerEnqueueEvent")


def decode(cls: type[Message], data: bytes) -> Any:
    """Parse protobuf bytes; raises DecodeError on bytes that are not this message."""
    msg = cls()
    msg.ParseFromString(data)
    return msg
