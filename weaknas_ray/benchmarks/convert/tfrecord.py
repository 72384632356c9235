"""Reading NAS-Bench-101's ``nasbench_only108.tfrecord`` without TensorFlow.

TFRecord framing, per record: ``uint64 length`` (little-endian), ``uint32 masked_crc32c(length bytes)``,
``length`` data bytes, ``uint32 masked_crc32c(data)``. Each record of the official file is UTF-8 JSON
``[module_hash, epochs, raw_adjacency, raw_operations, base64(ModelMetrics)]`` (google-research/nasbench
``nasbench/api.py``), one record per (cell, epochs, training repeat). ``ModelMetrics`` is the protobuf of
``nasbench/lib/model_metrics.proto``::

    message ModelMetrics { repeated EvaluationData evaluation_data = 1; optional int32 trainable_parameters = 2;
                           optional double total_time = 3; }
    message EvaluationData { optional double current_epoch = 1; optional double training_time = 2;
                             optional double train_accuracy = 3; optional double validation_accuracy = 4;
                             optional double test_accuracy = 5; optional string checkpoint_path = 6; }
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from weaknas_ray.exceptions import BenchmarkDataError

EVALUATION_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy",
                     5: "test_accuracy", 6: "checkpoint_path"}  # fmt: skip
_CRC32C_POLY = 0x82F63B78  # NOTE: Castagnoli polynomial, reflected
_MASK_DELTA = 0xA282EAD8  # NOTE: TFRecord's CRC mask constant


@lru_cache(maxsize=1)
def _crc_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ _CRC32C_POLY if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``; pure Python, about 10 MB/s, so data CRCs are optional."""
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC: rotate right by 15 bits, add a constant."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def read_records(path: Path, verify_data_crc: bool = False) -> Iterator[bytes]:
    """The records of a TFRecord file, in order.

    Args:
        path: the file.
        verify_data_crc: also check each record's data CRC (slow in pure Python; the length CRC is always
            checked, and the manifest's sha256 already covers the official file).

    Raises:
        BenchmarkDataError: truncated file or CRC mismatch, naming the file and the byte offset.
    """
    with open(path, "rb") as handle:
        offset = 0
        while header := handle.read(12):
            if len(header) < 12:
                raise BenchmarkDataError(f"{path}: truncated record header at byte {offset}")
            length, length_crc = struct.unpack("<QI", header)
            if masked_crc32c(header[:8]) != length_crc:
                raise BenchmarkDataError(
                    f"{path}: corrupt record length at byte {offset} (CRC mismatch); not a TFRecord file?"
                )
            data = handle.read(length)
            footer = handle.read(4)
            if len(data) < length or len(footer) < 4:
                raise BenchmarkDataError(f"{path}: truncated record at byte {offset} (expected {length} data bytes)")
            if verify_data_crc and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise BenchmarkDataError(f"{path}: corrupt record data at byte {offset} (CRC mismatch)")
            offset += 16 + length
            yield data


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        byte = buf[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


_FIXED = {1: ("<d", 8), 5: ("<f", 4)}  # protobuf wire type -> struct format, size


def proto_fields(buf: bytes) -> Iterator[tuple[int, int | float | bytes]]:
    """``(field number, value)`` pairs of a protobuf message: varints as int, 64-bit as double, 32-bit as
    float, length-delimited as bytes.

    Raises:
        ValueError: malformed message (truncated, unknown wire type).
    """
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire in _FIXED:
            fmt, size = _FIXED[wire]
            if pos + size > len(buf):
                raise ValueError(f"truncated {size * 8}-bit field {field}")
            value, pos = struct.unpack_from(fmt, buf, pos)[0], pos + size
        elif wire == 2:
            length, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + length], pos + length
            if len(value) < length:
                raise ValueError("truncated length-delimited field")
        else:
            raise ValueError(f"unsupported wire type {wire} for field {field}")
        yield field, value


def parse_model_metrics(buf: bytes) -> dict:
    """A serialized ``ModelMetrics`` -> ``{"evaluation_data": [{name: value}], "trainable_parameters": int,
    "total_time": float}``.

    Raises:
        ValueError: malformed message.
    """
    metrics: dict = {"evaluation_data": [], "trainable_parameters": 0, "total_time": 0.0}
    for field, value in proto_fields(buf):
        if field == 1:
            evaluation = {}
            for sub, sub_value in proto_fields(value):
                if sub in EVALUATION_FIELDS:
                    evaluation[EVALUATION_FIELDS[sub]] = sub_value.decode() if sub == 6 else sub_value
            metrics["evaluation_data"].append(evaluation)
        elif field == 2:
            metrics["trainable_parameters"] = int(value)
        elif field == 3:
            metrics["total_time"] = float(value)
    return metrics
