"""A hand-written protobuf wire-format reader: varints, fields of a message, packed and unpacked repeated values."""
import numpy as np

VARINT, I64, LEN, I32 = 0, 1, 2, 5


class WireError(ValueError):
    """The bytes are not a well-formed protobuf message."""


def varint(buf, pos, end):
    """(value, next position) of the varint at pos."""
    result = shift = 0
    while True:
        if pos >= end:
            raise WireError(f"varint runs past the end at byte {pos}")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise WireError(f"varint longer than 10 bytes at byte {pos}")


def field(buf, pos, end):
    """(field number, wire type, value, next position) of the field at pos.

    value is an int for varints, and (begin, end) byte offsets for length-delimited, 32- and 64-bit fields.
    """
    at = pos
    key, pos = varint(buf, pos, end)
    num, wt = key >> 3, key & 7
    if num == 0:
        raise WireError(f"field number 0 at byte {at}")
    if wt == VARINT:
        value, pos = varint(buf, pos, end)
        return num, wt, value, pos
    if wt == LEN:
        n, pos = varint(buf, pos, end)
    elif wt == I32:
        n = 4
    elif wt == I64:
        n = 8
    else:
        raise WireError(f"unknown wire type {wt} of field {num} at byte {at}")
    if pos + n > end:
        raise WireError(f"field {num} at byte {at} claims {n} bytes but only {end - pos} remain")
    return num, wt, (pos, pos + n), pos + n


def fields(buf, start, end):
    """Yield (field number, wire type, value) of every field of the message in buf[start:end]."""
    pos = start
    while pos < end:
        num, wt, value, pos = field(buf, pos, end)
        yield num, wt, value


def string(buf, span):
    return bytes(buf[span[0]:span[1]]).decode("utf-8", "replace")


def packed_varints(buf, span):
    out, pos = [], span[0]
    while pos < span[1]:
        v, pos = varint(buf, pos, span[1])
        out.append(v)
    return out


def fixed_array(buf, span, dtype):
    """The little-endian values of a packed field, as a copy in native order."""
    dt = np.dtype(dtype).newbyteorder("<")
    n = (span[1] - span[0]) // dt.itemsize
    if n * dt.itemsize != span[1] - span[0]:
        raise WireError(f"packed field of {span[1] - span[0]} bytes is not a whole number of {dt.itemsize}-byte values")
    return np.frombuffer(buf, dtype=dt, count=n, offset=span[0]).astype(dt.newbyteorder("="))


def unpacked_run(buf, pos, end, key_byte, size):
    """Values of consecutive unpacked fixed-width fields with the one-byte key key_byte from pos: (array, next pos).

    Caffe normally packs `repeated float data`; an unpacked run (key, 4 bytes, key, 4 bytes, ...) is read in one go.
    """
    step = size + 1
    raw = np.frombuffer(buf, dtype=np.uint8, count=end - pos, offset=pos)
    keys = raw[:(len(raw) // step) * step:step]
    bad = np.flatnonzero(keys != key_byte)
    n = int(bad[0]) if bad.size else len(keys)
    values = raw[:n * step].reshape(n, step)[:, 1:].copy().view("<f4" if size == 4 else "<f8").reshape(-1)
    return values.astype(np.float32 if size == 4 else np.float64), pos + n * step
