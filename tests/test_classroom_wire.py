"""Tests that pin the definitions of the grader's wire, clock and link (issue 45, item 5).

The wire (``pgcourse.classroom.sandboxed.wire``: frames' limits, value payloads, the RNG states), the work clock
(``clock``: CPU seconds of a process tree, idleness, the wall backstop) and the pure parts of the link (``link``:
framing over a socket pair, requests and answers, encoding and decoding of values, errors sent back) were tested
mostly through whole sandboxed grading runs, which test paths, not definitions. Each test below states one
definition in words and checks it on small objects built here: no student process, no sandbox, no sleeping. A
``/proc`` of a few processes is faked; a socket pair stands for the wire between the two processes.
"""
from __future__ import annotations

import base64
import json
import math
import os
import random
import socket
import struct
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from pgcourse.classroom.sandboxed import clock
from pgcourse.classroom.sandboxed import link as link_module
from pgcourse.classroom.sandboxed import wire
from pgcourse.classroom.sandboxed.link import Link, StudentFunction, Unavailable, _attach_remote_grad
from pgcourse.classroom.sandboxed.wire import (MT_WORDS, Lost, NotData, ProtocolError, StudentError, TooLarge,
                                               _array_from, _array_payload, _check_rng_state, _Dec, _Enc, _rng_get,
                                               _rng_set, _seed_everything, _short, _tensor_from, _tensor_payload)

DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64", "complex64", "complex128",
               "uint8", "int8", "int16", "int32", "int64", "bool")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@pytest.fixture
def saved_rngs():
    """The global RNG states are put back as they were after the test."""
    saved = torch.get_rng_state(), np.random.get_state(), random.getstate()
    yield
    torch.set_rng_state(saved[0])
    np.random.set_state(saved[1])
    random.setstate(saved[2])


# ==================================================================================================================
# wire.py
# ==================================================================================================================
def test_the_wire_limits_are_the_documented_ones():
    """A message is at most 48 MiB of JSON, 200,000 values and 48 levels of nesting; a tensor or array at most 2**26
    elements; a traceback sent back at most 12,000 characters; a student's result at most 2**20 elements; an
    MT19937 state 624 words. A frame's header is its length as 4 bytes, big-endian, unsigned."""
    assert wire.MAX_MESSAGE == 50_331_648
    assert wire.MAX_NODES == 200_000
    assert wire.MAX_DEPTH == 48
    assert wire.MAX_ELEMENTS == 67_108_864
    assert wire.MAX_TEXT == 12_000
    assert wire.MAX_RESULT_ELEMENTS == 1_048_576
    assert MT_WORDS == 624
    assert wire._HEADER.size == 4
    assert wire._HEADER.pack(258) == b"\x00\x00\x01\x02"
    assert wire._HEADER.pack(2**32 - 1) == b"\xff\xff\xff\xff"


def test_the_tensor_dtypes_and_numpy_kinds_that_cross():
    """Exactly twelve torch dtypes cross, each named as torch names it; numpy values cross when their kind is
    boolean, signed, unsigned, float or complex ("biufc"), nothing else (no objects, strings, dates, voids)."""
    assert set(wire._TORCH_DTYPES) == set(DTYPE_NAMES)
    for name, dtype in wire._TORCH_DTYPES.items():
        assert str(dtype) == f"torch.{name}"
    assert wire._NUMPY_KINDS == {"b", "i", "u", "f", "c"}


def test_the_shared_exceptions_kinds():
    """Lost is a BaseException (``except Exception`` cannot swallow it) carrying its kind and reason, str() being the
    reason; NotData is a TypeError; ProtocolError, TooLarge and StudentError are plain Exceptions."""
    lost = Lost("timeout", "time limit")
    assert not isinstance(lost, Exception) and isinstance(lost, BaseException)
    assert (lost.kind, lost.reason, str(lost)) == ("timeout", "time limit", "time limit")
    assert issubclass(NotData, TypeError)
    for kind in (ProtocolError, TooLarge, StudentError):
        assert issubclass(kind, Exception) and not issubclass(kind, TypeError)


@pytest.mark.parametrize("raw, text", [(b"", ""), (b"a", "YQ=="), (b"\xff\xef", "/+8="), (b"\x00\x01\x02", "AAEC")])
def test_bytes_travel_as_standard_base64(raw, text):
    """Raw bytes travel as standard (not URL-safe) padded base64 text, and are read back to the same bytes."""
    assert wire._b64(raw) == text
    assert wire._unb64(text) == raw


@pytest.mark.parametrize("text, message", [
    (None, "expected base64 text"), (b"YQ==", "expected base64 text"), (97, "expected base64 text"),
    (["YQ=="], "expected base64 text"),
    ("YQ", "bad base64"), ("Y Q==", "bad base64"), ("YQ==\n", "bad base64"), ("_-8=", "bad base64"),
    ("é", "bad base64"), ("YQ=", "bad base64"),
], ids=["None", "bytes", "int", "list", "unpadded", "space", "newline", "urlsafe", "unicode", "short-padding"])
def test_anything_but_strict_base64_text_is_a_protocol_error(text, message):
    """Only a str of the standard base64 alphabet, correctly padded, is read: anything else (not text, a character
    outside the alphabet, whitespace, non-ASCII, bad padding) is a ProtocolError that says so."""
    with pytest.raises(ProtocolError, match=message):
        wire._unb64(text)


@pytest.mark.parametrize("name", ["NaN", "Infinity", "-Infinity"])
def test_the_non_standard_json_constants_are_refused_by_name(name):
    """JSON's non-standard constants (NaN, Infinity, -Infinity) are a ProtocolError naming the constant."""
    with pytest.raises(ProtocolError, match=f"non-standard JSON constant {name}$"):
        json.loads(f"[{name}]", parse_constant=wire._reject_constant)


@pytest.mark.parametrize("text, limit, expected", [
    ("", 10, ""),
    ("0123456789", 10, "0123456789"),                              # exactly the limit: kept whole
    ("0123456789X", 10, "01234\n[… cut …]\n6789X"),                # one over: half from each end
    ("abcdefg", 5, "ab\n[… cut …]\nefg"),                          # odd limit: the tail gets the larger half
    ("ab", 1, "\n[… cut …]\nb"),
], ids=["empty", "at-limit", "one-over", "odd-limit", "limit-one"])
def test_a_long_text_keeps_its_head_and_tail(text, limit, expected):
    """A text of at most ``limit`` characters is sent whole; a longer one is cut to its first ``limit // 2`` and last
    ``-(-limit // 2)`` characters around a "[… cut …]" line."""
    assert _short(text, limit) == expected


def test_a_traceback_is_cut_at_twelve_thousand_characters():
    """By default the limit is MAX_TEXT (12,000 characters): 12,000 are kept whole, 12,001 keep 6,000 from each
    end."""
    assert _short("x" * 12_000) == "x" * 12_000
    text = "a" * 6_000 + "b" + "c" * 6_000
    assert _short(text) == "a" * 6_000 + "\n[… cut …]\n" + "c" * 6_000


def test_an_encoding_and_a_decoding_pass_start_empty():
    """A pass starts with no values counted, no bytes, nothing collected, no grad outputs or grad link, no element
    limit."""
    enc = _Enc()
    assert (enc.nodes, enc.bytes, enc.collect, enc.tensors, enc.arrays, enc.generators, enc.grad_outputs) == \
        (0, 0, False, [], [], [], None)
    dec = _Dec()
    assert (dec.nodes, dec.elements, dec.max_elements, dec.collect, dec.grad_link, dec.tensors, dec.arrays,
            dec.generators, dec.outputs) == (0, 0, None, False, None, [], [], [], 0)


# -- tensors ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("tensor, expected", [
    (torch.tensor([[1.0, 2.0]]), {"tensor": "float32", "shape": [1, 2], "data": b64(struct.pack("<2f", 1, 2)),
                                  "rg": False}),
    (torch.tensor([1.0, -0.5], dtype=torch.float64, requires_grad=True),
     {"tensor": "float64", "shape": [2], "data": b64(struct.pack("<2d", 1, -0.5)), "rg": True}),
    (torch.tensor([1, -2], dtype=torch.int64), {"tensor": "int64", "shape": [2], "data": b64(struct.pack("<2q", 1, -2)),
                                                "rg": False}),
    (torch.tensor([True, False, True]), {"tensor": "bool", "shape": [3], "data": b64(b"\x01\x00\x01"), "rg": False}),
    (torch.tensor(7, dtype=torch.int16), {"tensor": "int16", "shape": [], "data": b64(struct.pack("<h", 7)),
                                          "rg": False}),
    (torch.zeros(0, 3), {"tensor": "float32", "shape": [0, 3], "data": "", "rg": False}),
], ids=["float32", "float64-requires-grad", "int64", "bool", "scalar", "empty"])
def test_a_tensor_travels_as_its_dtype_shape_raw_bytes_and_whether_it_requires_grad(tensor, expected):
    """A tensor's payload is its dtype's name, its shape as a list, its values' bytes (little-endian, row-major) in
    base64 and ``rg``, whether it requires grad; the pass counts the bytes."""
    enc = _Enc()
    enc.bytes = 5
    assert _tensor_payload(tensor, enc) == expected
    assert enc.bytes == 5 + len(base64.b64decode(expected["data"]))


@pytest.mark.parametrize("view, values", [
    (torch.arange(6, dtype=torch.int8).reshape(2, 3).t(), [0, 3, 1, 4, 2, 5]),        # transposed
    (torch.arange(4, dtype=torch.int8).reshape(1, 4)[:, 2], [2]),                     # logp[:, a] with B = 1
    (torch.arange(4.0).reshape(1, 4)[:, 2], list(struct.pack("<f", 2.0))),          # ... of 4-byte floats
    (torch.arange(8, dtype=torch.int8)[::3], [0, 3, 6]),                              # strided
    (torch.tensor([5], dtype=torch.int8).expand(3), [5, 5, 5]),                       # expanded
], ids=["transposed", "size-1-column", "size-1-float-column", "strided", "expanded"])
def test_a_views_values_travel_in_row_major_order(view, values):
    """A view's payload holds its values in the view's own row-major order, whatever its strides."""
    payload = _tensor_payload(view, _Enc())
    assert list(base64.b64decode(payload["data"])) == values and payload["shape"] == list(view.shape)


def test_a_sparse_tensor_travels_as_its_dense_values():
    """A sparse (COO) tensor is sent as the dense tensor of its values."""
    dense = torch.tensor([[0, 1], [2, 0]], dtype=torch.int8)
    payload = _tensor_payload(dense.to_sparse(), _Enc())
    assert payload == {"tensor": "int8", "shape": [2, 2], "data": b64(b"\x00\x01\x02\x00"), "rg": False}


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("make", [
    lambda: torch.ones(2, dtype=torch.uint16), lambda: torch.ones(2, dtype=torch.complex32),
    lambda: torch.ones(2).to(torch.float8_e4m3fn), lambda: torch.eye(2).to_sparse_csr(),
    lambda: torch.quantize_per_tensor(torch.ones(2), 0.1, 0, torch.quint8),
], ids=["uint16", "complex32", "float8", "sparse-csr", "quantized"])
def test_a_tensor_of_another_dtype_or_layout_cannot_be_sent(make):
    """Only the twelve dtypes, in the strided layout (after a COO tensor is made dense), cross: another dtype, a
    compressed sparse layout or a quantized tensor is TooLarge, naming its dtype and layout."""
    tensor = make()
    with pytest.raises(TooLarge, match=rf"cannot send a tensor of dtype {tensor.dtype} / layout {tensor.layout}"):
        _tensor_payload(tensor, _Enc())


def test_a_tensor_of_more_than_max_elements_cannot_be_sent(monkeypatch):
    """A tensor of more than MAX_ELEMENTS elements is TooLarge (its count, with thousands separators, in the
    message); MAX_ELEMENTS itself is allowed."""
    with pytest.raises(TooLarge, match="a tensor of 67,108,865 elements is too large to grade"):
        _tensor_payload(torch.zeros(1).expand(2**26 + 1), _Enc())
    monkeypatch.setattr(wire, "MAX_ELEMENTS", 4)
    assert _tensor_payload(torch.zeros(4, dtype=torch.uint8), _Enc())["shape"] == [4]
    with pytest.raises(TooLarge, match="5 elements"):
        _tensor_payload(torch.zeros(5, dtype=torch.uint8), _Enc())


def test_the_values_of_one_message_are_at_most_max_message_bytes():
    """A pass may carry MAX_MESSAGE bytes of values in all, and not one more (TooLarge: "more than 48 MB")."""
    enc = _Enc()
    enc.bytes = wire.MAX_MESSAGE - 8
    _tensor_payload(torch.zeros(2), enc)
    assert enc.bytes == wire.MAX_MESSAGE
    enc = _Enc()
    enc.bytes = wire.MAX_MESSAGE - 7
    with pytest.raises(TooLarge, match="more than 48 MB"):
        _tensor_payload(torch.zeros(2), enc)


@pytest.mark.parametrize("name", DTYPE_NAMES)
def test_every_dtype_comes_back_as_sent(name):
    """A tensor of each of the twelve dtypes comes back with its dtype, shape and values, as a tensor of its own
    (writable, not sharing the message's memory)."""
    dtype = getattr(torch, name)
    base = torch.arange(6).reshape(2, 3) - 2   # negative values too, where the dtype has them
    tensor = (base > 0) if dtype == torch.bool else base.abs().to(dtype) if dtype == torch.uint8 else base.to(dtype)
    back = _tensor_from(json.loads(json.dumps(_tensor_payload(tensor, _Enc()))))
    assert back.dtype == dtype and back.shape == (2, 3) and torch.equal(back, tensor)
    back.view(-1)[0] = back.view(-1)[1]  # writable


@pytest.mark.parametrize("payload, values", [
    ({"tensor": "int16", "shape": [3], "data": b64(struct.pack("<3h", 1, -2, 300))}, [1, -2, 300]),
    ({"tensor": "uint8", "shape": [2, 1], "data": b64(b"\xff\x00")}, [[255], [0]]),
    ({"tensor": "float32", "shape": [], "data": b64(struct.pack("<f", 1.5))}, 1.5),
    ({"tensor": "bool", "shape": [4], "data": b64(b"\x00\x02\x01\xff")}, [False, True, True, True]),
    ({"tensor": "int32", "shape": [0, 2], "data": ""}, []),
], ids=["int16", "uint8-column", "scalar", "bool-any-nonzero-byte", "empty"])
def test_a_tensor_is_read_from_its_payload(payload, values):
    """A payload is read as its shape of little-endian values of its dtype; a bool is true for any nonzero byte."""
    tensor = _tensor_from(payload)
    assert tensor.dtype == getattr(torch, payload["tensor"]) and list(tensor.shape) == payload["shape"]
    if payload["shape"] and 0 in payload["shape"]:
        assert tensor.numel() == 0
    else:
        assert tensor.tolist() == values


@pytest.mark.parametrize("change, message", [
    ({"tensor": "float"}, "bad tensor$"), ({"tensor": "Float32"}, "bad tensor$"),
    ({"tensor": "torch.float32"}, "bad tensor$"), ({"tensor": None}, "bad tensor$"),
    ({"tensor": "uint16"}, "bad tensor$"),
    ({"shape": (2,)}, "bad tensor$"), ({"shape": None}, "bad tensor$"), ({"shape": [True, 1]}, "bad tensor$"),
    ({"shape": [-1, -2]}, "bad tensor$"), ({"shape": [2.0]}, "bad tensor$"), ({"shape": ["2"]}, "bad tensor$"),
    ({"shape": [2, -1]}, "bad tensor$"),
    ({"data": None}, "expected base64 text"), ({"data": b64(b"\x00") }, "wrong size"),
    ({"data": b64(b"\x00" * 3)}, "wrong size"),
], ids=["dtype-float", "dtype-case", "dtype-prefix", "dtype-none", "dtype-uint16", "shape-tuple", "shape-none",
        "shape-bool", "shape-negative", "shape-float", "shape-str", "shape-one-negative", "data-none", "data-short",
        "data-long"])
def test_a_bad_tensor_payload_is_a_protocol_error(change, message):
    """A payload whose dtype is not one of the twelve names exactly, whose shape is not a list of ints >= 0 (a bool
    is not an int), or whose data is not base64 of exactly numel * itemsize bytes is a ProtocolError saying which."""
    payload = {"tensor": "int8", "shape": [2], "data": b64(b"\x01\x02"), **change}
    with pytest.raises(ProtocolError, match=message):
        _tensor_from(payload)


def test_a_tensor_has_at_most_32_dimensions():
    """A payload of rank 32 is read; rank 33 is a ProtocolError ("bad tensor rank")."""
    assert _tensor_from({"tensor": "uint8", "shape": [1] * 32, "data": b64(b"\x07")}).dim() == 32
    with pytest.raises(ProtocolError, match="bad tensor rank"):
        _tensor_from({"tensor": "uint8", "shape": [1] * 33, "data": b64(b"\x07")})


def test_a_tensor_payload_of_more_than_max_elements_is_refused_before_its_data(monkeypatch):
    """A shape of more than MAX_ELEMENTS elements is refused ("tensor too large") before the data is read; exactly
    MAX_ELEMENTS passes that check (and is then held to its data's size)."""
    with pytest.raises(ProtocolError, match="tensor too large"):
        _tensor_from({"tensor": "uint8", "shape": [2**26 + 1], "data": None})
    with pytest.raises(ProtocolError, match="wrong size"):
        _tensor_from({"tensor": "uint8", "shape": [2**26], "data": ""})
    monkeypatch.setattr(wire, "MAX_ELEMENTS", 4)
    assert _tensor_from({"tensor": "uint8", "shape": [4], "data": b64(b"\x01" * 4)}).tolist() == [1] * 4
    with pytest.raises(ProtocolError, match="tensor too large"):
        _tensor_from({"tensor": "uint8", "shape": [5], "data": b64(b"\x01" * 5)})


@pytest.mark.parametrize("dtype, rg, requires_grad, expected", [
    ("float32", True, None, True), ("float32", False, None, False), ("float32", 1, None, False),
    ("float32", "true", None, False), ("float32", None, None, False), ("float32", True, False, False),
    ("float32", False, True, True), ("complex64", True, None, True), ("int64", True, None, False),
    ("bool", True, None, False), ("int32", False, True, False),
])
def test_a_tensor_requires_grad_when_told_so_exactly_and_it_can(dtype, rg, requires_grad, expected):
    """A tensor read requires grad when ``requires_grad`` says so, or, when that is None, when its payload's ``rg``
    is exactly True (not 1, not "true"); and only a floating or complex tensor ever does."""
    raw = _tensor_payload(torch.zeros(2, dtype=getattr(torch, dtype)), _Enc())
    payload = {**raw, "rg": rg} if rg is not None else {k: v for k, v in raw.items() if k != "rg"}
    assert _tensor_from(payload, requires_grad=requires_grad).requires_grad is expected


# -- arrays ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("array, expected", [
    (np.array([1, -2], dtype="<i4"), {"ndarray": "<i4", "shape": [2], "data": b64(struct.pack("<2i", 1, -2))}),
    (np.array([1], dtype=">i2"), {"ndarray": ">i2", "shape": [1], "data": b64(b"\x00\x01")}),
    (np.array([[1, 2], [3, 4]], dtype=np.uint8, order="F"), {"ndarray": "|u1", "shape": [2, 2],
                                                               "data": b64(b"\x01\x02\x03\x04")}),
    (np.arange(6, dtype=np.int8).reshape(2, 3).T, {"ndarray": "|i1", "shape": [3, 2],
                                                    "data": b64(bytes([0, 3, 1, 4, 2, 5]))}),
    (np.array([True, False]), {"ndarray": "|b1", "shape": [2], "data": b64(b"\x01\x00")}),
    (np.array(2.5), {"ndarray": "<f8", "shape": [], "data": b64(struct.pack("<d", 2.5))}),
    (np.zeros((0, 2), dtype=np.float32), {"ndarray": "<f4", "shape": [0, 2], "data": ""}),
], ids=["int32", "big-endian", "fortran-order", "transposed", "bool", "scalar", "empty"])
def test_an_array_travels_as_its_dtype_string_shape_and_row_major_bytes(array, expected):
    """An array's payload is its dtype's full string (byte order included), its shape as a list and its values'
    bytes in row-major order, in base64; the pass counts the bytes."""
    enc = _Enc()
    enc.bytes = 3
    assert _array_payload(array, enc) == expected
    assert enc.bytes == 3 + array.nbytes


def test_an_array_is_limited_like_a_tensor(monkeypatch):
    """An array adds its bytes to the pass's MAX_MESSAGE and may hold MAX_ELEMENTS elements, not one more: past
    either it is TooLarge."""
    enc = _Enc()
    enc.bytes = wire.MAX_MESSAGE - 2
    _array_payload(np.zeros(2, dtype=np.uint8), enc)
    enc = _Enc()
    enc.bytes = wire.MAX_MESSAGE - 1
    with pytest.raises(TooLarge, match="an array too large to grade"):
        _array_payload(np.zeros(2, dtype=np.uint8), enc)
    monkeypatch.setattr(wire, "MAX_ELEMENTS", 4)
    _array_payload(np.zeros(4, dtype=np.uint8), _Enc())
    with pytest.raises(TooLarge, match="an array too large to grade"):
        _array_payload(np.zeros(5, dtype=np.uint8), _Enc())


@pytest.mark.parametrize("array", [np.array([[1.5, -2.0]], dtype="<f4"), np.array([1, 300], dtype=">i2"),
                                   np.array([1 + 2j], dtype=np.complex128), np.array([True, False]),
                                   np.array(7, dtype=np.uint64), np.zeros((2, 0), dtype=np.int64)])
def test_an_array_comes_back_as_sent_and_writable(array):
    """An array comes back with its dtype (byte order included), shape and values, as a writable array of its own."""
    back = _array_from(json.loads(json.dumps(_array_payload(array, _Enc()))))
    assert back.dtype == array.dtype and back.dtype.str == array.dtype.str and back.shape == array.shape
    assert np.array_equal(back, array) and back.flags.writeable and back.flags.owndata


@pytest.mark.parametrize("change, message", [
    ({"ndarray": "nonsense"}, "bad array dtype"), ({"ndarray": [1, 2]}, "bad array dtype"),
    ({"ndarray": {"names": ["a", "a"], "formats": ["i1", "i1"]}}, "bad array dtype"),
    ({"ndarray": {"names": ["a"], "formats": ["i1"]}}, "bad array$"),
    ({"ndarray": "O"}, "bad array$"), ({"ndarray": "<U1"}, "bad array$"), ({"ndarray": "S1"}, "bad array$"),
    ({"ndarray": "<M8[s]"}, "bad array$"), ({"ndarray": "<m8[s]"}, "bad array$"), ({"ndarray": "V1"}, "bad array$"),
    ({"shape": (2,)}, "bad array$"), ({"shape": None}, "bad array$"), ({"shape": [True, 2]}, "bad array$"),
    ({"shape": [-2]}, "bad array$"), ({"shape": [2.0]}, "bad array$"), ({"shape": [1] * 33}, "bad array$"),
    ({"shape": [2, -1]}, "bad array$"),
    ({"data": None}, "expected base64 text"), ({"data": b64(b"\x00")}, "wrong size"),
    ({"data": b64(b"\x00" * 3)}, "wrong size"),
], ids=["dtype-nonsense", "dtype-list", "dtype-repeated-field", "structured", "object", "unicode", "bytes", "datetime",
        "timedelta", "void", "shape-tuple",
        "shape-none", "shape-bool", "shape-negative", "shape-float", "rank-33", "shape-one-negative", "data-none",
        "data-short", "data-long"])
def test_a_bad_array_payload_is_a_protocol_error(change, message):
    """An array payload whose dtype is not a numpy dtype of kind "biufc", whose shape is not a list of at most 32
    ints >= 0, or whose data is not base64 of exactly numel * itemsize bytes is a ProtocolError saying which."""
    payload = {"ndarray": "|i1", "shape": [2], "data": b64(b"\x01\x02"), **change}
    with pytest.raises(ProtocolError, match=message):
        _array_from(payload)


def test_an_array_has_at_most_32_dimensions_and_max_elements(monkeypatch):
    """An array of rank 32 is read; of MAX_ELEMENTS elements too, but one more is refused (as data of the wrong
    size)."""
    assert _array_from({"ndarray": "|u1", "shape": [1] * 32, "data": b64(b"\x05")}).ndim == 32
    monkeypatch.setattr(wire, "MAX_ELEMENTS", 4)
    assert _array_from({"ndarray": "|u1", "shape": [4], "data": b64(b"\x05" * 4)}).tolist() == [5] * 4
    with pytest.raises(ProtocolError, match="wrong size"):
        _array_from({"ndarray": "|u1", "shape": [5], "data": b64(b"\x05" * 5)})


# -- the global RNG states -------------------------------------------------------------------------------------------
def test_the_global_rng_states_are_sent_as_data(saved_rngs):
    """The RNG states sent are torch's state bytes in base64; numpy's [keys as base64 of 624 uint32 words, position,
    has_gauss, cached gaussian]; Python's [version, its 625 ints, its cached gaussian]; all plain JSON."""
    torch.manual_seed(3)
    np.random.seed(4)
    np.random.random(3)
    random.seed(5)
    state = _rng_get()
    assert json.loads(json.dumps(state)) == state
    assert base64.b64decode(state["torch"]) == torch.get_rng_state().numpy().tobytes()
    _, keys, pos, has_gauss, cached = np.random.get_state()
    assert state["np"] == [b64(keys.astype("<u4").tobytes()), 6, 0, 0.0] and pos == 6
    assert len(base64.b64decode(state["np"][0])) == 4 * 624
    version, internal, gauss = random.getstate()
    assert state["py"] == [3, list(internal), None] and len(state["py"][1]) == 625


def valid_rng_fields() -> dict:
    np.random.seed(1)
    random.seed(1)
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    return dict(torch_state=torch.get_rng_state(), np_keys=keys.copy(), pos=int(pos), has_gauss=0, cached=0.0,
                version=version, internal=list(internal), gauss=None)


def _with_word(index: int, value: int):
    def change(fields):
        fields["internal"][index] = value
    return change


GOOD_RNG_CHANGES = {
    "pos-0": lambda f: f.update(pos=0), "pos-624": lambda f: f.update(pos=624), "pos-1": lambda f: f.update(pos=1),
    "has-gauss-1": lambda f: f.update(has_gauss=1), "cached-int": lambda f: f.update(cached=1),
    "cached-negative": lambda f: f.update(cached=-2.5), "cached-np-float": lambda f: f.update(cached=np.float64(0.5)),
    "word-max": _with_word(0, 2**32 - 1), "last-word-max": _with_word(623, 2**32 - 1), "word-0": _with_word(5, 0),
    "py-pos-0": _with_word(-1, 0), "py-pos-624": _with_word(-1, 624), "gauss-float": lambda f: f.update(gauss=0.5),
}


@pytest.mark.parametrize("change", GOOD_RNG_CHANGES.values(), ids=GOOD_RNG_CHANGES.keys())
def test_a_global_rng_state_at_its_edges_is_accepted(saved_rngs, change):
    """Every field in its generator's range is accepted: numpy's position in [0, 624], has_gauss 0 or 1, any finite
    cached gaussian (int or float); Python's words in [0, 2**32), its position in [0, 624], its gaussian None or a
    float."""
    fields = valid_rng_fields()
    change(fields)
    assert _check_rng_state(**fields) is None


BAD_RNG_CHANGES = {
    "torch-short": (lambda f: f.update(torch_state=f["torch_state"][:-1]), "torch state of 5055 bytes"),
    "torch-long": (lambda f: f.update(torch_state=torch.cat([f["torch_state"], f["torch_state"][:1]])),
                   "torch state of 5057 bytes"),
    "keys-623": (lambda f: f.update(np_keys=f["np_keys"][:-1]), "numpy key of 623 words"),
    "keys-625": (lambda f: f.update(np_keys=np.append(f["np_keys"], np.uint32(1))), "numpy key of 625 words"),
    "keys-2d": (lambda f: f.update(np_keys=f["np_keys"].reshape(624, 1)), "numpy key of 624 words"),
    "pos-625": (lambda f: f.update(pos=625), "numpy position 625"),
    "pos-negative": (lambda f: f.update(pos=-1), "numpy position -1"),
    "pos-bool": (lambda f: f.update(pos=True), "numpy position True"),
    "pos-float": (lambda f: f.update(pos=3.0), "numpy position 3.0"),
    "pos-str": (lambda f: f.update(pos="3"), "numpy position '3'"),
    "has-gauss-2": (lambda f: f.update(has_gauss=2), "numpy has_gauss 2"),
    "has-gauss-negative": (lambda f: f.update(has_gauss=-1), "numpy has_gauss -1"),
    "has-gauss-bool": (lambda f: f.update(has_gauss=True), "numpy has_gauss True"),
    "has-gauss-float": (lambda f: f.update(has_gauss=1.0), "numpy has_gauss 1.0"),
    "cached-bool": (lambda f: f.update(cached=False), "numpy cached gaussian False"),
    "cached-nan": (lambda f: f.update(cached=float("nan")), "numpy cached gaussian nan"),
    "cached-inf": (lambda f: f.update(cached=float("inf")), "numpy cached gaussian inf"),
    "cached--inf": (lambda f: f.update(cached=float("-inf")), "numpy cached gaussian -inf"),
    "cached-str": (lambda f: f.update(cached="0.5"), "numpy cached gaussian '0.5'"),
    "cached-none": (lambda f: f.update(cached=None), "numpy cached gaussian None"),
    "version-2": (lambda f: f.update(version=2), "Python random state"),
    "version-4": (lambda f: f.update(version=4), "Python random state"),
    "internal-624": (lambda f: f.update(internal=f["internal"][1:]), "Python random state"),
    "internal-626": (lambda f: f.update(internal=[0] + f["internal"]), "Python random state"),
    "first-word-negative": (_with_word(0, -1), "Python random state"),
    "first-word-2**32": (_with_word(0, 2**32), "Python random state"),
    "last-word-2**32": (_with_word(623, 2**32), "Python random state"),
    "py-pos-625": (_with_word(-1, 625), "Python random state"),
    "py-pos-negative": (_with_word(-1, -1), "Python random state"),
    "gauss-int": (lambda f: f.update(gauss=1), "Python random state"),
    "gauss-str": (lambda f: f.update(gauss="0.5"), "Python random state"),
}


@pytest.mark.parametrize("change, problem", BAD_RNG_CHANGES.values(), ids=BAD_RNG_CHANGES.keys())
def test_a_global_rng_state_out_of_its_range_is_refused_naming_the_field(saved_rngs, change, problem):
    """Each field out of its generator's range is a ProtocolError "bad RNG state: ..." naming that field and its
    value: torch's state of another length, numpy's key not of shape (624,), its position outside [0, 624] or not an
    int, has_gauss not the int 0 or 1, its cached gaussian not a finite number (a bool is not one); Python's state
    not version 3, not 625 ints, a word outside [0, 2**32), a position outside [0, 624], a gaussian neither None nor
    a float."""
    fields = valid_rng_fields()
    assert torch.get_rng_state().numel() == 5056  # the lengths named above
    change(fields)
    with pytest.raises(ProtocolError) as raised:
        _check_rng_state(**fields)
    assert str(raised.value) == f"bad RNG state: {problem}"


def test_every_problem_of_an_rng_state_is_named_in_order(saved_rngs):
    """All the problems of one state are named, comma-separated, torch's first, then numpy's, then Python's."""
    fields = valid_rng_fields()
    fields.update(torch_state=torch.zeros(3, dtype=torch.uint8), np_keys=np.zeros(2, np.uint32), pos=700,
                  has_gauss=5, cached=float("nan"), version=1)
    with pytest.raises(ProtocolError) as raised:
        _check_rng_state(**fields)
    assert str(raised.value) == ("bad RNG state: torch state of 3 bytes, numpy key of 2 words, numpy position 700, "
                                 "numpy has_gauss 5, numpy cached gaussian nan, Python random state")


def test_the_global_rng_states_are_set_as_sent_cached_gaussians_included(saved_rngs):
    """A state read on one side and set (through JSON) on the other makes every generator draw what it would have
    drawn: torch's, numpy's (with its cached gaussian) and Python's (with its cached gaussian)."""
    torch.manual_seed(11)
    torch.rand(3)
    np.random.seed(12)
    np.random.standard_normal()   # leaves one gaussian cached
    random.seed(13)
    random.gauss(0.0, 1.0)        # leaves one gaussian cached
    state = json.loads(json.dumps(_rng_get()))
    assert state["np"][2] == 1 and isinstance(state["py"][2], float)
    expected = torch.rand(2).tolist(), np.random.standard_normal(), np.random.random(), random.gauss(0.0, 1.0), \
        random.random()
    _seed_everything(99)
    _rng_set(state)
    assert np.random.get_state()[0] == "MT19937"
    assert (torch.rand(2).tolist(), np.random.standard_normal(), np.random.random(), random.gauss(0.0, 1.0),
            random.random()) == expected


def _spoiled(change):
    def spoil(state):
        change(state)
        return state
    return spoil


@pytest.mark.parametrize("spoil, message", [
    (lambda s: None, "bad RNG state: "),
    (lambda s: [s["torch"], s["np"], s["py"]], "bad RNG state: "),
    (_spoiled(lambda s: s.pop("torch")), "bad RNG state: 'torch'"),
    (_spoiled(lambda s: s.pop("py")), "bad RNG state: 'py'"),
    (_spoiled(lambda s: s.update(np=s["np"][:3])), "bad RNG state: "),
    (_spoiled(lambda s: s.update(torch=123)), "expected base64 text"),
    (_spoiled(lambda s: s["py"][1].__setitem__(0, True)), "^bad random state$"),
    (_spoiled(lambda s: s["py"][1].__setitem__(0, 1.0)), "^bad random state$"),
    (_spoiled(lambda s: s["py"].__setitem__(1, tuple(s["py"][1]))), "^bad random state$"),
    (_spoiled(lambda s: s["py"].__setitem__(2, 1)), "bad RNG state: Python random state"),
    (_spoiled(lambda s: s["np"].__setitem__(1, 625)), "bad RNG state: numpy position 625"),
    (_spoiled(lambda s: s.update(torch=b64(b"\x00" * 5056))), "bad RNG state: "),
], ids=["not-a-dict", "a-list", "no-torch", "no-py", "np-short", "torch-not-text", "word-bool", "word-float",
        "internal-tuple", "gauss-int", "position-625", "torch-state-invalid"])
def test_a_malformed_rng_state_is_a_protocol_error_and_sets_nothing(saved_rngs, spoil, message):
    """A state that is not a dict of the three fields, whose Python words are not all ints (bool and float are not),
    that fails a range check or that a generator refuses is a ProtocolError "bad RNG state: ..." (or "bad random
    state"); no generator is set from one failing a check, not even those whose part was fine."""
    torch.manual_seed(21)
    np.random.seed(21)
    random.seed(21)
    state = json.loads(json.dumps(_rng_get()))
    torch.manual_seed(22)
    np.random.seed(22)
    random.seed(22)
    before = torch.get_rng_state(), np.random.get_state()[1].copy(), random.getstate()
    with pytest.raises(ProtocolError, match=message):
        _rng_set(spoil(state))
    if message != "bad RNG state: ":   # a generator that refuses its state is reached after the checks
        assert torch.equal(torch.get_rng_state(), before[0])
    assert np.array_equal(np.random.get_state()[1], before[1]) and random.getstate() == before[2]


@pytest.mark.parametrize("seed", [None, 0, 7])
def test_seeding_everything_seeds_the_three_global_generators(saved_rngs, seed):
    """``_seed_everything(seed)`` (seed 0 by default) seeds torch, numpy and Python's random with that seed."""
    value = 0 if seed is None else seed
    torch.manual_seed(value)
    np.random.seed(value)
    random.seed(value)
    expected = torch.rand(2).tolist(), np.random.random(), random.random()
    torch.manual_seed(value + 1)
    np.random.seed(value + 1)
    random.seed(value + 1)
    _seed_everything() if seed is None else _seed_everything(seed)
    assert (torch.rand(2).tolist(), np.random.random(), random.random()) == expected


# ==================================================================================================================
# clock.py
# ==================================================================================================================
def test_the_clocks_constants_are_the_documented_ones():
    """Idle is less than 2% of a 5 s window computed; the backstop is 20 times a budget plus 60 s; /proc is read at
    most every 0.05 s; a tick is the system's clock tick."""
    assert (clock.IDLE_SHARE, clock.IDLE_WINDOW_S, clock.WALL_FACTOR, clock.WALL_SLACK_S, clock.READ_EVERY_S) == \
        (0.02, 5.0, 20.0, 60.0, 0.05)
    assert clock._TICK == float(os.sysconf("SC_CLK_TCK"))


@pytest.mark.parametrize("budget, expected", [(0.0, 60.0), (1.0, 80.0), (2.5, 110.0), (-3.0, 60.0), (30, 660.0)])
def test_the_wall_backstop_is_twenty_budgets_and_a_minute(budget, expected):
    """The most wall seconds a budget may take: 20 times the budget (a negative budget counts as 0) plus 60 s."""
    assert clock.wall_backstop(budget) == expected


def stat_line(pid: int, comm: str, utime: int, stime: int, cutime: int, cstime: int) -> str:
    """A /proc/<pid>/stat line: fields 14 to 17 (1-based) are utime, stime, cutime, cstime; the fields around them
    hold large decoys, so that reading any other field shows."""
    fields = ["S"] + [str(1000 + i) for i in range(10)] + [str(utime), str(stime), str(cutime), str(cstime)] + \
        [str(100_000 + i) for i in range(30)]
    return f"{pid} ({comm}) " + " ".join(fields) + "\n"


@pytest.fixture
def fake_proc(monkeypatch):
    """A /proc of a few processes (ticks of 250 per second) the clock reads instead of the real one."""
    files: dict[str, str] = {}
    tasks: dict[int, list[str]] = {}
    opened: list[str] = []

    def fake_open(path, encoding=None, errors=None):
        opened.append(path)
        assert len(opened) < 1000, "reading /proc in circles"  # a tree walk that never ends fails, not hangs
        if path not in files:
            raise FileNotFoundError(path)
        from io import StringIO
        return StringIO(files[path])

    def fake_listdir(path):
        pid = int(path.split("/")[2])
        if pid not in tasks:
            raise FileNotFoundError(path)
        return list(tasks[pid])

    monkeypatch.setattr(clock, "open", fake_open, raising=False)
    monkeypatch.setattr(clock, "os", SimpleNamespace(listdir=fake_listdir, getpid=lambda: 1))
    monkeypatch.setattr(clock, "_TICK", 250.0)

    def add(pid, ticks=(0, 0, 0, 0), children=(), threads=None, comm="python"):
        files[f"/proc/{pid}/stat"] = stat_line(pid, comm, *ticks)
        threads = threads or {pid: children}
        tasks[pid] = [str(t) for t in threads]
        for thread, kids in threads.items():
            files[f"/proc/{pid}/task/{thread}/children"] = " ".join(str(k) for k in kids) + ("\n" if kids else "")
    return SimpleNamespace(add=add, files=files, tasks=tasks)


def test_a_process_cpu_time_is_its_utime_stime_cutime_and_cstime(fake_proc):
    """A process's CPU seconds are the sum of its utime, stime, cutime and cstime ticks (fields 14 to 17 of its
    stat), over the clock tick; its name, even one holding ") (", does not shift the fields."""
    fake_proc.add(10, ticks=(1, 2, 4, 8), comm="a) (b c) d")
    assert clock.tree_cpu_seconds(10) == pytest.approx((1 + 2 + 4 + 8) / 250)


def test_a_process_trees_cpu_time_sums_every_thread_and_descendant_once(fake_proc):
    """The tree's CPU seconds: the process, and every child listed by any of its threads, their children and so on,
    each counted once even if listed twice; a child already ended (no stat) adds nothing and stops nothing."""
    fake_proc.add(10, ticks=(100, 0, 0, 0), threads={10: [20, 21], 11: [22, 20]})
    fake_proc.add(20, ticks=(0, 50, 0, 0), children=[30])
    fake_proc.add(22, ticks=(0, 0, 25, 0))
    fake_proc.add(30, ticks=(0, 0, 0, 10), children=[20])  # a cycle, as a race may show
    # 21 has ended: no stat
    assert clock.tree_cpu_seconds(10) == pytest.approx((100 + 50 + 25 + 10) / 250)


def test_a_process_whose_children_cannot_be_listed_still_counts(fake_proc):
    """A process whose threads cannot be listed (it ended between two reads) still counts its own time."""
    fake_proc.add(10, ticks=(7, 0, 0, 0))
    del fake_proc.tasks[10]
    assert clock.tree_cpu_seconds(10) == pytest.approx(7 / 250)


@pytest.mark.parametrize("stat", ["", "10 (python) S " + " ".join(["x"] * 20), "no paren"],
                         ids=["empty", "not-numbers", "no-paren"])
def test_an_unreadable_process_is_not_measured(fake_proc, stat):
    """A process that /proc does not show, or whose stat cannot be read as numbers, is not measured: None, never a
    crash nor zero seconds."""
    assert clock.tree_cpu_seconds(10) is None
    fake_proc.add(10, ticks=(1, 1, 1, 1))
    fake_proc.files["/proc/10/stat"] = stat
    assert clock.tree_cpu_seconds(10) is None


def test_a_tree_is_measured_only_when_its_root_is(fake_proc):
    """The tree's time is None when the root process itself cannot be read, whatever its descendants show; a root
    of zero ticks is measured (0.0)."""
    fake_proc.add(10, ticks=(0, 0, 0, 0), children=[20])
    fake_proc.add(20, ticks=(5, 0, 0, 0))
    assert clock.tree_cpu_seconds(10) == pytest.approx(5 / 250)
    assert clock.tree_cpu_seconds(20) == pytest.approx(5 / 250)
    fake_proc.add(30, ticks=(0, 0, 0, 0))
    assert clock.tree_cpu_seconds(30) == 0.0
    fake_proc.files["/proc/10/stat"] = "garbage"
    assert clock.tree_cpu_seconds(10) is None


def test_without_a_clock_tick_nothing_is_measured(fake_proc, monkeypatch):
    """Where the clock tick is unknown (not POSIX) no process is measured."""
    fake_proc.add(10, ticks=(1, 1, 1, 1))
    monkeypatch.setattr(clock, "_TICK", 0.0)
    assert clock.tree_cpu_seconds(10) is None


def test_this_process_is_measured_on_linux():
    """On Linux this process's tree is measured (a float of seconds); a pid that cannot exist is not."""
    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc")
    seconds = clock.tree_cpu_seconds(os.getpid())
    assert isinstance(seconds, float) and seconds >= 0.0
    assert clock.tree_cpu_seconds(2**31 - 1) is None


class FakeTime:
    """A monotonic clock and a CPU clock the test moves by hand."""

    def __init__(self):
        self.wall = 0.0
        self.cpu = 0.0

    def monotonic(self):
        return self.wall

    def process_time(self):
        return self.cpu


@pytest.fixture
def fake_clock(monkeypatch):
    """A WorkClock on a fake time and a fake /proc: ``trees`` maps a pid to its tree's CPU seconds (None: gone)."""
    now = FakeTime()
    trees: dict[int, float | None] = {1: 0.0}
    reads: list[int] = []

    def fake_tree(pid):
        reads.append(pid)
        return trees.get(pid)
    monkeypatch.setattr(clock, "time", now)
    monkeypatch.setattr(clock, "tree_cpu_seconds", fake_tree)
    monkeypatch.setattr(clock, "os", SimpleNamespace(getpid=lambda: 1))
    return SimpleNamespace(now=now, trees=trees, reads=reads, work=clock.WorkClock())


@pytest.mark.parametrize("own, measures", [(0.0, "cpu"), (3.5, "cpu"), (None, "wall")])
def test_the_clock_measures_cpu_where_its_own_process_can_be_read(monkeypatch, own, measures):
    """The clock counts CPU seconds where its own process's tree can be read (even at 0.0 seconds), else wall
    seconds; it starts with no student, nothing ended, no samples and a read long due."""
    monkeypatch.setattr(clock, "tree_cpu_seconds", lambda pid: own if pid == os.getpid() else None)
    work = clock.WorkClock()
    assert work.measures == measures
    assert (work._students, work._ended, work._samples, work._read_at, work._student_seconds) == \
        ({}, 0.0, [], -1e9, 0.0)


def test_a_wall_clock_is_the_monotonic_clock(fake_clock):
    """Measuring wall time, the clock reads the monotonic clock, not the CPU time."""
    fake_clock.work.measures = "wall"
    fake_clock.now.wall, fake_clock.now.cpu = 12.5, 3.0
    assert fake_clock.work() == 12.5


def test_the_work_is_own_cpu_plus_students_read_at_most_every_read_every_s(fake_clock):
    """Measuring CPU, the work is this process's CPU time plus that of the watched students' trees (as last read)
    plus that of the students already forgotten; the trees are read again once READ_EVERY_S has passed (exactly
    READ_EVERY_S is enough), not before."""
    work, now, trees = fake_clock.work, fake_clock.now, fake_clock.trees
    work.watch(7)
    assert work._students == {7: 0.0}
    trees[7] = 2.0
    now.cpu = 1.0
    assert work() == 3.0
    trees[7] = 4.0
    now.wall = 0.04
    assert work() == 3.0          # too soon: the students' time as last read
    now.wall = 0.05
    assert work() == 5.0          # exactly READ_EVERY_S later: read again
    now.wall = 0.0999
    trees[7] = 6.0
    assert work() == 5.0


def test_a_students_time_never_goes_down_and_is_kept_once_forgotten(fake_clock):
    """A student's tree time is the largest ever read (a read that shows less, or nothing, keeps it); when the
    student is forgotten its time is read once more and kept, and the next call reads the others at once."""
    work, now, trees = fake_clock.work, fake_clock.now, fake_clock.trees
    work.watch(7)
    work.watch(8)
    trees.update({7: 2.0, 8: 1.0})
    assert work() == 3.0
    trees.update({7: 1.5, 8: None})   # less, and gone
    now.wall = 1.0
    assert work() == 3.0
    trees[7] = 2.5
    work.forget(7)                    # read once more at forgetting: 2.5 kept
    assert 7 not in work._students and work._ended == 2.5
    trees[8] = 4.0
    assert work() == 6.5              # read again at once, though no time passed
    work.forget(99)                   # never watched: adds nothing
    assert work._ended == 2.5


def test_watching_a_pid_starts_its_count_at_zero(fake_clock):
    """Watching a pid starts its count at 0.0, also a pid watched before (a new process may have its number): what
    an earlier process of that number used is not counted for it."""
    work, now, trees = fake_clock.work, fake_clock.now, fake_clock.trees
    work.watch(7)
    trees[7] = 2.0
    assert work() == 2.0
    work.watch(7)
    assert work._students == {7: 0.0}
    trees[7] = None                   # the new process cannot be read yet
    now.wall = 1.0
    assert work() == 0.0


def test_the_samples_keep_the_window_and_the_newest_sample_at_least_a_window_old(fake_clock):
    """``sample`` notes (wall, work); the samples kept are those of the last IDLE_WINDOW_S wall seconds and the
    newest one at least a window old (a sample exactly a window old is that one), always at least two."""
    work, now = fake_clock.work, fake_clock.now
    for t in range(11):
        now.wall, now.cpu = float(t), t / 10
        work.sample()
    assert [wall for wall, _ in work._samples] == [5.0, 6.0, 7.0, 8.0, 9.0, 10.0]
    assert work._samples[0] == (5.0, 0.5)
    now.wall = 100.0
    work.sample()
    assert [wall for wall, _ in work._samples] == [10.0, 100.0]
    now.wall = 1000.0
    work.sample()
    assert [wall for wall, _ in work._samples] == [100.0, 1000.0]


def test_a_sample_notes_the_whole_work_students_included(fake_clock):
    """A sample's work is the clock's reading: this process's CPU time with the students' and the ended ones'."""
    work, now, trees = fake_clock.work, fake_clock.now, fake_clock.trees
    work.watch(7)
    trees[7] = 2.0
    work._ended = 0.5
    now.wall, now.cpu = 3.0, 1.0
    work.sample()
    assert work._samples == [(3.0, 3.5)]


def test_two_samples_however_far_apart_are_both_kept(fake_clock):
    """With two samples the older is never dropped, however old."""
    work, now = fake_clock.work, fake_clock.now
    work.sample()
    now.wall = 50.0
    work.sample()
    assert [wall for wall, _ in work._samples] == [0.0, 50.0]


def test_idleness_is_not_judged_without_cpu_or_samples(fake_clock):
    """A wall clock is never idle (it cannot tell), nor a clock with no samples yet."""
    work = fake_clock.work
    assert work.idle(0.0) is None
    work._samples = [(0.0, 0.0), (10.0, 0.0)]
    assert work.idle(0.0) == 10.0
    work.measures = "wall"
    assert work.idle(0.0) is None


@pytest.mark.parametrize("samples, since, expected", [
    ([(0.0, 0.0), (5.0, 0.0)], 0.0, 5.0),                   # exactly a window, from exactly since: judged, idle
    ([(0.0, 0.0), (4.9, 0.0)], 0.0, None),                  # less than a window: not judged
    ([(0.0, 0.0), (5.0, 0.0)], 0.1, None),                  # the only old sample is before since
    ([(1.0, 0.0), (7.0, 0.0)], 0.5, 6.5),                   # idle for as long as since was
    ([(0.0, 0.0), (1.0, 0.5), (6.0, 0.5)], 0.0, 6.0),       # judged from the newest old sample (1.0), not the oldest
    ([(0.0, 0.0), (6.0, 0.11)], 0.0, 6.0),                  # 0.11 < 0.02 * 6
    ([(0.0, 0.0), (6.0, 0.13)], 0.0, None),                 # 0.13 > 0.02 * 6
    ([(0.0, 0.0), (9.0, 0.15)], 0.0, 9.0),                  # 0.15 < 0.02 * 9: over the 9 s since, not the window's 5
], ids=["exact-window", "short", "before-since", "since-later", "newest-old", "under-share", "over-share",
        "since-the-old-sample"])
def test_work_is_idle_when_it_computed_less_than_the_share_of_the_last_window(fake_clock, samples, since, expected):
    """Idle: the newest sample noted after ``since`` and at least IDLE_WINDOW_S before the newest one, and the work
    done since it is less than IDLE_SHARE of the wall time since it; then the clock has waited ``now - since``."""
    work = fake_clock.work
    work._samples = list(samples)
    assert work.idle(since) == expected


def test_work_of_exactly_the_share_is_not_idle(fake_clock):
    """Work of exactly IDLE_SHARE of the window is computing, not waiting."""
    work = fake_clock.work
    share = clock.IDLE_SHARE * 5.0
    work._samples = [(0.0, 0.0), (5.0, share)]
    assert work.idle(0.0) is None
    work._samples = [(0.0, 0.0), (5.0, math.nextafter(share, 0.0))]
    assert work.idle(0.0) == 5.0


# ==================================================================================================================
# link.py: the pure parts (framing over a socket pair, requests, values, errors)
# ==================================================================================================================
@pytest.fixture
def sockets():
    """Two connected sockets: ``ours`` for the Link under test, ``peer`` for the test's other end (blocking, with a
    short timeout so that a missing frame fails instead of hanging)."""
    ours, peer = socket.socketpair()
    peer.settimeout(2.0)
    yield SimpleNamespace(ours=ours, peer=peer)
    ours.close()
    peer.close()


def frame(message) -> bytes:
    data = json.dumps(message).encode("utf-8")
    return struct.pack("!I", len(data)) + data


def read_frame(sock: socket.socket) -> dict:
    def exactly(size):
        data = b""
        while len(data) < size:
            chunk = sock.recv(size - len(data))
            assert chunk, "closed"
            data += chunk
        return data
    (size,) = struct.unpack("!I", exactly(4))
    return json.loads(exactly(size))


class Exited(Exception):
    """What the student's side's os._exit raises here."""


@pytest.fixture
def no_exit(monkeypatch):
    """The student's side ends its process where the worker is gone; here that raises Exited instead."""
    def fake_exit(code):
        raise Exited(code)
    monkeypatch.setattr(link_module, "os", SimpleNamespace(_exit=fake_exit))


def worker(sock=None) -> Link:
    return Link(sock or socket.socketpair()[0], trusted=True)


def student(sock=None) -> Link:
    return Link(sock or socket.socketpair()[0], trusted=False)


def test_the_links_constants_and_its_start():
    """A wait with a deadline looks at the work clock every 0.25 s. A link starts at request 1 with no deadline,
    nothing lost, no student error, no handlers, "time limit" as its timeout's reason and the monotonic clock by
    default; the worker's socket is non-blocking, the student's blocking."""
    assert link_module.POLL_S == 0.25
    a, b = socket.socketpair()
    with a, b:
        ours = Link(a, trusted=True)
        theirs = Link(b, trusted=False)
        assert a.getblocking() is False and b.getblocking() is True
        assert (ours._next_request, ours.deadline, ours.lost, ours.last_student_error, ours.handlers,
                ours.timeout_reason) == (1, None, None, None, {}, "time limit")
        assert ours.clock is link_module.time.monotonic and theirs.trusted is False
        marker = object()
        assert Link(a, trusted=True, clock=marker).clock is marker


def test_the_first_loss_is_the_one_kept():
    """A link lost once stays lost for that reason: a later failure returns the first Lost, not a new one."""
    ours = worker()
    first = ours._fail("timeout", "time limit")
    assert (first.kind, first.reason) == ("timeout", "time limit") and ours.lost is first
    assert ours._fail("crashed", "ended") is first


@pytest.mark.parametrize("message", [{}, {"a": 1, "b": [1, 2.5, None, True, "é"]}, {"k": "q", "id": 3}])
def test_a_message_is_a_length_prefixed_compact_json_frame(sockets, message):
    """A message is sent as its compact UTF-8 JSON (no spaces), preceded by its length in 4 big-endian bytes."""
    student(sockets.ours).send(message)
    data = json.dumps(message, separators=(",", ":")).encode("utf-8")
    expected = struct.pack("!I", len(data)) + data
    assert sockets.peer.recv(len(expected) + 10) == expected


def test_a_message_with_nan_is_never_sent(sockets):
    """NaN and infinities are not JSON: a message holding one is refused before anything is sent."""
    with pytest.raises(ValueError):
        student(sockets.ours).send({"x": float("nan")})


def test_a_message_of_at_most_max_message_bytes_is_sent(sockets, monkeypatch):
    """A message of exactly MAX_MESSAGE bytes of JSON is sent; one byte more is TooLarge ("message too large")."""
    monkeypatch.setattr(link_module, "MAX_MESSAGE", len(b'{"a":"xx"}'))
    ours = student(sockets.ours)
    ours.send({"a": "xx"})
    assert read_frame(sockets.peer) == {"a": "xx"}
    with pytest.raises(TooLarge, match="message too large"):
        ours.send({"a": "xxx"})


def test_a_frame_is_read_back_as_its_message(sockets):
    """A frame is read as the JSON dict it holds, however the bytes arrive."""
    ours = worker(sockets.ours)
    sockets.peer.sendall(frame({"k": "r", "id": 1, "ok": [1, "é"]}) + frame({"second": True}))
    assert ours.recv() == {"k": "r", "id": 1, "ok": [1, "é"]}
    assert ours.recv() == {"second": True}


def test_a_frame_of_exactly_max_message_bytes_is_read(sockets, monkeypatch):
    """A frame announcing MAX_MESSAGE bytes is read; one announcing more loses the link ("oversized")."""
    body = b'{"a":1}'
    monkeypatch.setattr(link_module, "MAX_MESSAGE", len(body))
    ours = worker(sockets.ours)
    sockets.peer.sendall(struct.pack("!I", len(body)) + body)
    assert ours.recv() == {"a": 1}
    sockets.peer.sendall(struct.pack("!I", len(body) + 1) + body + b" ")
    with pytest.raises(Lost) as lost:
        ours.recv()
    assert lost.value.kind == "protocol" and "oversized message" in lost.value.reason


@pytest.mark.parametrize("body", [b"[1, 2]", b'"text"', b"{", b"NaN", b'{"a": Infinity}', b"\xff\xfe",
                                  b"[" * 100_000 + b"]" * 100_000, b"3"],
                         ids=["list", "string", "truncated", "nan", "infinity", "not-utf8", "deep", "number"])
def test_a_frame_that_is_not_a_json_object_loses_the_link(sockets, body):
    """A frame that is not standard JSON (a truncated text, NaN or Infinity, bytes that are not UTF-8, nesting too
    deep to parse) or not a JSON object loses the link as a protocol error ("malformed message")."""
    ours = worker(sockets.ours)
    sockets.peer.sendall(struct.pack("!I", len(body)) + body)
    with pytest.raises(Lost) as lost:
        ours.recv()
    assert lost.value.kind == "protocol" and "malformed message" in lost.value.reason and ours.lost is lost.value


def test_a_closed_socket_loses_the_workers_link_and_ends_the_students_process(sockets, no_exit):
    """When the other end closes, the worker's link is lost as "crashed" ("the student process ended"); the
    student's process ends (its worker is gone)."""
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"\x00\x00")
        b.close()
        with pytest.raises(Lost) as lost:
            worker(a).recv()
        assert (lost.value.kind, lost.value.reason) == ("crashed", "the student process ended")
    sockets.peer.close()
    with pytest.raises(Exited):
        student(sockets.ours).recv()


def test_a_request_is_numbered_and_its_answer_is_the_response_of_that_number(sockets):
    """A request is sent as {"k": "q", "id": n, "op": op, **payload}, numbered from 1 up; its answer is the next
    message, a response ("k": "r") with the same id."""
    ours = worker(sockets.ours)
    sockets.peer.sendall(frame({"k": "r", "id": 1, "ok": 5}) + frame({"k": "r", "id": 2, "ok": 6}))
    assert ours.request("call", {"function": "f"}) == {"k": "r", "id": 1, "ok": 5}
    assert read_frame(sockets.peer) == {"k": "q", "id": 1, "op": "call", "function": "f"}
    assert ours.request("vjp", {}) == {"k": "r", "id": 2, "ok": 6}
    assert read_frame(sockets.peer) == {"k": "q", "id": 2, "op": "vjp"}


@pytest.mark.parametrize("answer", [{"k": "r", "id": 2, "ok": 1}, {"k": "q", "id": 1, "op": "call"},
                                    {"id": 1, "ok": 1}, {"k": "R", "id": 1}, {"k": "r", "id": "1"}],
                         ids=["other-id", "a-request", "no-kind", "kind-case", "id-text"])
def test_any_other_answer_to_a_request_loses_the_link(sockets, answer):
    """To the worker, an answer that is not a response of its request's id (another id, a request from the student,
    no kind) is a broken protocol ("unexpected message")."""
    ours = worker(sockets.ours)
    sockets.peer.sendall(frame(answer))
    with pytest.raises(Lost) as lost:
        ours.request("call", {})
    assert lost.value.kind == "protocol" and "unexpected message" in lost.value.reason


def test_a_wrong_answer_ends_the_students_process(sockets, no_exit):
    """On the student's side a message that does not answer its request ends the process."""
    sockets.peer.sendall(frame({"k": "r", "id": 9}))
    with pytest.raises(Exited):
        student(sockets.ours).request("x", {})


def test_a_request_is_served_by_its_handler_and_answered_with_its_encoded_value(sockets):
    """A request is served by the handler of its op, with the whole message; the answer is {"k": "r", "id": id,
    "ok": the encoded value}."""
    ours = student(sockets.ours)
    seen = []
    ours.handlers["double"] = lambda message: seen.append(message) or (message["x"] * 2, None)
    ours.serve({"k": "q", "id": 4, "op": "double", "x": 21})
    assert seen == [{"k": "q", "id": 4, "op": "double", "x": 21}]
    assert read_frame(sockets.peer) == {"k": "r", "id": 4, "ok": {"tuple": [42, None]}}


@pytest.mark.parametrize("message", [{"id": 1}, {"op": "nope", "id": 1}, {"op": 3, "id": 1}, {"op": ["f"], "id": 1},
                                     {"op": "f"}, {"op": "f", "id": "1"}, {"op": "f", "id": 1.0},
                                     {"op": "f", "id": True}],
                         ids=["no-op", "unknown-op", "op-int", "op-list", "no-id", "id-text", "id-float", "id-bool"])
def test_a_request_without_a_known_op_and_an_int_id_is_refused(sockets, no_exit, message):
    """A request is served only if its op is the name of a handler and its id an int (not a bool): otherwise the
    worker's link is lost ("unknown request") and the student's process ends."""
    ours = worker(sockets.ours)
    ours.handlers["f"] = lambda message: 1
    with pytest.raises(Lost) as lost:
        ours.serve(message)
    assert lost.value.kind == "protocol" and "unknown request" in lost.value.reason
    theirs = student(socket.socketpair()[0])
    theirs.handlers["f"] = lambda message: 1
    with pytest.raises(Exited):
        theirs.serve(message)


def raiser(error):
    def handler(message):
        raise error
    return handler


@pytest.mark.parametrize("trusted, error, expected", [
    (False, ValueError("bad x"), {"type": "ValueError", "message": "bad x"}),
    (False, KeyError("k"), {"type": "KeyError", "message": "'k'"}),
    (False, KeyboardInterrupt(), {"type": "RuntimeError", "message": "KeyboardInterrupt while serving the grader"}),
    (False, SystemExit(3), {"type": "RuntimeError", "message": "SystemExit while serving the grader"}),
    (True, KeyboardInterrupt(), {"type": "KeyboardInterrupt", "message": ""}),
    (False, ValueError("x" * 3000), {"type": "ValueError", "message": "x" * 1000 + "\n[… cut …]\n" + "x" * 1000}),
], ids=["value-error", "key-error", "keyboard-interrupt", "system-exit", "worker-keyboard-interrupt", "long"])
def test_an_error_in_a_handler_is_answered_with_its_type_and_message(sockets, trusted, error, expected):
    """A handler's error is answered {"k": "r", "id": id, "err": {"type": its class name, "message": str, cut to
    2,000 characters}}; on the student's side a KeyboardInterrupt or SystemExit becomes a RuntimeError that names
    it (the student's code cannot end the serving)."""
    ours = Link(sockets.ours, trusted=trusted)
    ours.handlers["f"] = raiser(error)
    ours.serve({"op": "f", "id": 2})
    assert read_frame(sockets.peer) == {"k": "r", "id": 2, "err": expected}


def test_a_handlers_value_too_large_to_send_is_answered_as_a_value_error(sockets, monkeypatch):
    """A handler's value too large to send is answered as a ValueError saying why; a Lost from a handler is not
    answered but raised."""
    ours = student(sockets.ours)
    monkeypatch.setattr(link_module, "MAX_NODES", 2)
    ours.handlers["f"] = lambda message: [1, 2]
    ours.serve({"op": "f", "id": 1})
    assert read_frame(sockets.peer) == {"k": "r", "id": 1, "err": {
        "type": "ValueError", "message": "the value is too large or too deeply nested to grade"}}
    ours.handlers["g"] = raiser(Lost("timeout", "t"))
    with pytest.raises(Lost):
        ours.serve({"op": "g", "id": 2})


def test_a_response_is_its_value_or_its_error():
    """An answer holding "err" raises the remote error; one holding "ok" is its decoded value; one holding neither is
    a broken protocol ("response without a value")."""
    ours = student()
    assert ours._answer({"ok": {"list": [1, {"float": "inf"}]}}) == [1, math.inf]
    assert ours._answer({"ok": 0}) == 0 and ours._answer({"ok": None}) is None
    with pytest.raises(ValueError, match="boom"):
        ours._answer({"err": {"type": "ValueError", "message": "boom"}, "ok": 1})
    with pytest.raises(ProtocolError, match="response without a value"):
        ours._answer({"k": "r"})


def test_a_protocol_error_loses_the_workers_link_and_is_an_exception_on_the_students_side():
    """A broken protocol is, to the worker, a Lost of kind "protocol" ("the student process broke the protocol
    (...)"), kept as the link's loss; to the student, a ProtocolError of the same words."""
    error = worker()._protocol("bad thing")
    assert isinstance(error, Lost) and (error.kind, error.reason) == (
        "protocol", "the student process broke the protocol (bad thing)")
    error = student()._protocol("bad thing")
    assert type(error) is ProtocolError and str(error) == "bad thing"


@pytest.mark.parametrize("error, kind, text", [
    ({"type": "ValueError", "message": "m", "traceback": "Traceback...\nValueError: m"}, StudentError,
     "Traceback...\nValueError: m"),
    ({"type": "ValueError", "message": "m"}, StudentError, "ValueError: m"),
    ({"type": "ValueError", "message": "m", "traceback": ""}, StudentError, "ValueError: m"),
    ({"message": "m"}, StudentError, "Exception: m"),
    ({"type": "ValueError"}, StudentError, "ValueError: "),
    ({"type": "X" * 150, "message": "m"}, StudentError, "X" * 100 + ": m"),
    ({"type": "NotImplementedError", "message": "stub"}, NotImplementedError, "stub"),
    ({"type": "notimplementederror", "message": "stub"}, StudentError, "notimplementederror: stub"),
    ({"type": "E", "traceback": "t" * 13_000}, StudentError, "t" * 6_000 + "\n[… cut …]\n" + "t" * 6_000),
], ids=["traceback", "no-traceback", "empty-traceback", "no-type", "no-message", "long-type", "not-implemented",
        "case", "long-traceback"])
def test_the_workers_view_of_a_students_error(error, kind, text):
    """To the worker, the student's error is a StudentError of its traceback (or "type: message" without one; type
    "Exception" when missing and cut to 100 characters; the text cut to MAX_TEXT), kept as the link's last student
    error; a NotImplementedError stays one (an exercise not done), with its message."""
    ours = worker()
    with pytest.raises(kind) as raised:
        ours._raise_remote(error)
    assert type(raised.value) is kind and str(raised.value) == text
    assert ours.last_student_error is (raised.value if kind is StudentError else None)


@pytest.mark.parametrize("name, kind, text", [
    ("AttributeError", AttributeError, "m"), ("TypeError", TypeError, "m"), ("ValueError", ValueError, "m"),
    ("IndexError", IndexError, "m"), ("KeyError", KeyError, "'m'"), ("RuntimeError", RuntimeError, "m"),
    ("ZeroDivisionError", ZeroDivisionError, "m"), ("AssertionError", AssertionError, "m"),
    ("NotImplementedError", NotImplementedError, "m"), ("StopIteration", RuntimeError, "m"),
    ("OSError", RuntimeError, "OSError: m"), ("valueerror", RuntimeError, "valueerror: m"),
    ("StudentError", RuntimeError, "StudentError: m"),
])
def test_the_students_view_of_a_workers_error(name, kind, text):
    """To the student, the worker's error is raised as the same builtin for the ten common kinds (StopIteration as a
    RuntimeError, which a generator cannot swallow), with its message; any other kind as a RuntimeError
    "type: message"."""
    with pytest.raises(BaseException) as raised:
        student()._raise_remote({"type": name, "message": "m"})
    assert type(raised.value) is kind and str(raised.value) == text


@pytest.mark.parametrize("error", [None, "ValueError: m", ["ValueError", "m"], 3])
def test_an_error_that_is_not_a_dict_is_a_broken_protocol(error):
    """An error that is not a dict breaks the protocol ("bad error")."""
    with pytest.raises(ProtocolError, match="bad error"):
        student()._raise_remote(error)
    with pytest.raises(Lost, match=r"\(bad error\)"):
        worker()._raise_remote(error)


def test_an_error_is_described_by_its_class_name_and_cut_message():
    """An error is described to the other side as its class's name and its message cut to 2,000 characters."""
    ours = student()
    assert ours._describe_error(KeyError("k")) == {"type": "KeyError", "message": "'k'"}
    assert ours._describe_error(ValueError("x" * 2000)) == {"type": "ValueError", "message": "x" * 2000}
    long = ours._describe_error(ValueError("a" * 1000 + "b" + "c" * 1000))
    assert long["message"] == "a" * 1000 + "\n[… cut …]\n" + "c" * 1000


# -- deadlines -------------------------------------------------------------------------------------------------------
class FakeWorkClock:
    """A work clock the test sets: its reading and its idleness."""

    def __init__(self, now=0.0, waited=None):
        self.now = now
        self.waited = waited
        self.asked = []
        self.samples = 0

    def __call__(self):
        return self.now

    def idle(self, since_wall):
        self.asked.append(since_wall)
        return self.waited

    def sample(self):
        self.samples += 1


@pytest.fixture
def wall(monkeypatch):
    """The link's monotonic wall clock, set by the test."""
    now = SimpleNamespace(t=100.0)
    monkeypatch.setattr(link_module, "time", SimpleNamespace(monotonic=lambda: now.t))
    return now


def test_a_deadline_arms_a_wall_backstop_of_its_budget(wall):
    """Setting a deadline notes the wall time and a backstop of ``wall_backstop`` of the budget left on the work
    clock (20 times it plus 60 s); clearing it (None) changes neither."""
    work = FakeWorkClock(now=10.0)
    ours = Link(socket.socketpair()[0], trusted=True, clock=work)
    ours.deadline = 13.0
    assert (ours.deadline, ours._armed_wall, ours._backstop) == (13.0, 100.0, 100.0 + 20 * 3.0 + 60)
    wall.t = 150.0
    ours.deadline = None
    assert (ours.deadline, ours._armed_wall, ours._backstop) == (None, 100.0, 220.0)
    work.now = -5.0
    ours.deadline = 0.0                            # a deadline at 0.0 is a deadline
    assert (ours.deadline, ours._armed_wall, ours._backstop) == (0.0, 150.0, 150.0 + 20 * 5.0 + 60)


def test_a_deadline_is_checked_on_the_work_clock_then_idleness_then_the_backstop(wall):
    """Without a deadline nothing is checked; with one, the link is lost ("timeout") when the work clock reaches the
    deadline (exactly reaching it is enough) with the timeout's reason; else when the work waited (idle since the
    deadline was armed) with how long; else at the wall backstop (exactly reaching it is enough) with its length."""
    work = FakeWorkClock(now=0.0)
    ours = Link(socket.socketpair()[0], trusted=True, clock=work)
    ours._check_deadline()
    assert work.asked == []
    ours.deadline = 10.0
    work.now = 9.99
    ours._check_deadline()
    assert work.asked == [100.0]
    work.now = 10.0
    ours.timeout_reason = "the check's time limit"
    with pytest.raises(Lost) as lost:
        ours._check_deadline()
    assert (lost.value.kind, lost.value.reason) == ("timeout", "the check's time limit")
    with pytest.raises(Lost) as again:  # lost stays lost
        ours._check_deadline()
    assert again.value is lost.value

    ours = Link(socket.socketpair()[0], trusted=True, clock=work)
    work.now, work.waited = 0.0, 7.4
    ours.deadline = 10.0
    with pytest.raises(Lost) as lost:
        ours._check_deadline()
    assert lost.value.kind == "timeout" and lost.value.reason.startswith("time limit (your code waited 7 s without ")

    ours = Link(socket.socketpair()[0], trusted=True, clock=work)
    work.waited = None
    ours.deadline = 10.0                        # backstop: 100 + 20 * 10 + 60 = 360
    wall.t = 359.9
    ours._check_deadline()
    wall.t = 360.0
    with pytest.raises(Lost) as lost:
        ours._check_deadline()
    assert lost.value.kind == "timeout" and "within 260 s: grade again on a quieter machine" in lost.value.reason


def test_a_lost_link_stays_lost_with_or_without_a_deadline(sockets):
    """Once lost, the worker's link raises its loss at every check, with no deadline set, and sends nothing more."""
    ours = worker(sockets.ours)
    lost = ours._fail("crashed", "the student process ended")
    with pytest.raises(Lost) as raised:
        ours._check_deadline()
    assert raised.value is lost
    with pytest.raises(Lost) as raised:
        ours.send({"k": "q"})
    assert raised.value is lost
    sockets.peer.setblocking(False)
    with pytest.raises(BlockingIOError):
        sockets.peer.recv(1)


def test_a_plain_clock_is_never_asked_about_idleness(wall):
    """A clock without ``idle`` (the monotonic clock) only has its deadline checked."""
    ours = Link(socket.socketpair()[0], trusted=True, clock=lambda: 5.0)
    ours.deadline = 6.0
    ours._check_deadline()


@pytest.mark.parametrize("deadline, write, timeout", [(None, False, None), (10.0, False, 0.25), (10.0, True, 0.25)])
def test_a_wait_looks_at_the_clock_every_poll_s_only_with_a_deadline(monkeypatch, wall, deadline, write, timeout):
    """Waiting for the socket, the link samples its work clock and waits POLL_S at a time when it has a deadline
    (to check it between looks), without a timeout when it has none; for reading or for writing as asked."""
    looks = []

    def fake_select(readable, writable, errors, wait):
        looks.append((list(readable), list(writable), wait))
        return (readable, writable, []) if len(looks) > 1 else ([], [], [])
    monkeypatch.setattr(link_module, "select", SimpleNamespace(select=fake_select))
    work = FakeWorkClock(now=0.0)
    sock = socket.socketpair()[0]
    ours = Link(sock, trusted=True, clock=work)
    ours.deadline = deadline
    ours._wait(write=write)
    expected = ([], [sock], timeout) if write else ([sock], [], timeout)
    assert looks == [expected, expected] and work.samples == 2


# -- values ----------------------------------------------------------------------------------------------------------
def enc(value, trusted=True, pass_=None):
    return Link(socket.socketpair()[0], trusted=trusted).enc(value, pass_ or _Enc())


@pytest.mark.parametrize("value, expected", [
    (None, None), (True, True), (False, False), ("", ""), ("é\n", "é\n"), (0, 0), (-5, -5),
    (2**62 - 1, 2**62 - 1), (-(2**62 - 1), -(2**62 - 1)), (2**62, {"bigint": str(2**62)}),
    (-(2**62), {"bigint": str(-(2**62))}), (10**30, {"bigint": "1" + "0" * 30}),
    (1.5, 1.5), (-0.0, -0.0), (float("nan"), {"float": "nan"}), (float("inf"), {"float": "inf"}),
    (float("-inf"), {"float": "-inf"}), (np.float64(2.5), 2.5),
    (torch.float64, {"dtype": "float64"}), (torch.Size([2, 0]), {"size": [2, 0]}),
    ((), {"tuple": []}), ((1, "a"), {"tuple": [1, "a"]}), ([], {"list": []}), ([1, [2]], {"list": [1, {"list": [2]}]}),
    ({}, {"dict": []}), ({"a": 1, 2: None}, {"dict": [["a", 1], [2, None]]}),
    ({(1, 2): [3]}, {"dict": [[{"tuple": [1, 2]}, {"list": [3]}]]}),
    (1 + 2j, {"complex": [1.0, 2.0]}), (b"\x00a", {"bytes": "AGE="}), (b"", {"bytes": ""}),
    (slice(1, None, -1), {"slice": [1, None, -1]}), (slice(None), {"slice": [None, None, None]}),
    (Ellipsis, {"ellipsis": True}), (torch.device("cpu"), {"device": "cpu"}),
    (np.int64(-3), {"npscalar": "<i8", "data": b64(struct.pack("<q", -3))}),
    (np.float32(1.5), {"npscalar": "<f4", "data": b64(struct.pack("<f", 1.5))}),
    (np.bool_(True), {"npscalar": "|b1", "data": b64(b"\x01")}),
    (np.str_("hi"), "hi"),
], ids=lambda v: repr(v)[:40] if not isinstance(v, dict) else None)
def test_each_kind_of_value_is_encoded_as_documented(value, expected):
    """None, bools, strings, ints under 2**62 in size, finite floats go as themselves (a bool stays a bool, a numpy
    float64 as a float, a numpy string as a string); larger ints as {"bigint": decimal}; NaN and infinities as
    {"float": repr}; dtypes, sizes, tuples, lists, dicts (as pairs, in order), complex numbers, bytes, slices,
    Ellipsis, devices and numpy scalars in their own tagged forms."""
    found = enc(value)
    assert found == expected and type(found) is type(expected)
    if isinstance(value, float) and math.isfinite(value):
        assert math.copysign(1, found) == math.copysign(1, value)


def test_every_value_counts_as_a_node_and_at_most_max_nodes_are_sent(monkeypatch):
    """Each value, container, key and item counts as one node of the pass; MAX_NODES are sent, one more is
    TooLarge."""
    pass_ = _Enc()
    enc({"a": [1, 2], "b": (None,)}, pass_=pass_)
    assert pass_.nodes == 1 + 2 + 3 + 2    # the dict; "a" and its list of two; "b" and its tuple of one
    monkeypatch.setattr(link_module, "MAX_NODES", 5)
    enc([1, 2, 3, 4])
    with pytest.raises(TooLarge, match="too large or too deeply nested"):
        enc([1, 2, 3, 4, 5])


def nested(depth, inner=1, tag="list"):
    value = inner
    for _ in range(depth):
        value = [value] if tag == "list" else (value,) if tag == "tuple" else {"k": value}
    return value


@pytest.mark.parametrize("tag", ["list", "tuple", "dict"])
def test_values_are_sent_nested_at_most_max_depth_levels(tag):
    """A value inside MAX_DEPTH (48) containers is sent; inside 49 it is TooLarge."""
    enc(nested(48, tag=tag))
    with pytest.raises(TooLarge, match="too deeply nested"):
        enc(nested(49, tag=tag))


def test_a_dicts_keys_are_one_level_deeper_like_its_values():
    """A dict's keys are values one level inside it, like its values: a tuple key whose innermost item is at depth
    MAX_DEPTH is sent, one level deeper it is TooLarge (however shallow the value)."""
    enc({nested(47, tag="tuple"): 1})
    with pytest.raises(TooLarge, match="too deeply nested"):
        enc({nested(48, tag="tuple"): 1})


def test_a_slices_parts_are_one_level_deeper():
    """A slice's start, stop and step are values one level inside it."""
    enc(nested(47, inner=slice(1, 2)))
    with pytest.raises(TooLarge):
        enc(nested(48, inner=slice(1, 2)))


def test_the_characters_of_text_count_toward_max_message():
    """Every character of a string counts toward the pass's MAX_MESSAGE: text reaching it exactly is sent, one
    character more is TooLarge ("text too large"). Bytes count too."""
    pass_ = _Enc()
    pass_.bytes = wire.MAX_MESSAGE - 3
    enc("abc", pass_=pass_)
    assert pass_.bytes == wire.MAX_MESSAGE
    pass_.bytes = wire.MAX_MESSAGE - 2
    with pytest.raises(TooLarge, match="text too large to grade"):
        enc("abc", pass_=pass_)
    pass_ = _Enc()
    enc(["é€", b"xyz"], pass_=pass_)
    assert pass_.bytes == 2 + 3


def test_tensors_arrays_and_generators_are_collected_in_order_when_asked():
    """A collecting pass keeps the tensors, arrays and generators it encodes, the objects themselves, in order; a
    pass that does not collect keeps none."""
    t1, t2, a1, g1 = torch.zeros(1), torch.ones(2), np.zeros(3), torch.Generator()
    pass_ = _Enc(collect=True)
    found = enc([t1, {"x": a1}, (g1, t2)], pass_=pass_)
    assert pass_.tensors[0] is t1 and pass_.tensors[1] is t2 and len(pass_.tensors) == 2
    assert pass_.arrays[0] is a1 and len(pass_.arrays) == 1 and pass_.generators[0] is g1 and len(pass_.generators) == 1
    assert found["list"][0] == _tensor_payload(t1, _Enc())
    assert found["list"][2]["tuple"][0] == {"generator": b64(g1.get_state().numpy().tobytes())}
    pass_ = _Enc()
    enc([t1, a1, g1], pass_=pass_)
    assert (pass_.tensors, pass_.arrays, pass_.generators) == ([], [], [])


def test_the_student_marks_its_outputs_that_require_grad_by_index():
    """On the student's side (grad outputs kept), each returned tensor that requires grad gets "out": its index among
    them, and is kept; a tensor that does not require grad gets no index."""
    outputs: list = []
    a, b, c = torch.ones(1, requires_grad=True), torch.ones(1), torch.ones(1, requires_grad=True)
    found = enc([a, b, c], trusted=False, pass_=_Enc(grad_outputs=outputs))
    assert [item.get("out") for item in found["list"]] == [0, None, 1]
    assert outputs[0] is a and outputs[1] is c and len(outputs) == 2
    assert "out" not in enc(a)


@pytest.mark.parametrize("array, tagged", [(np.zeros(2, dtype=np.int16), True), (np.array(["a"]), False),
                                           (np.array([None], dtype=object), False),
                                           (np.array(["2020-01-01"], dtype="M8[D]"), False)])
def test_only_numeric_arrays_cross(array, tagged):
    """An array crosses when its kind is one of "biufc"; an array of strings, objects or dates is not data."""
    if tagged:
        assert enc(array) == _array_payload(array, _Enc())
    else:
        with pytest.raises(NotData, match="a ndarray object"):
            enc(array)


@pytest.mark.parametrize("value, what", [(len, "a function"), (lambda: 1, "a function"), (object(), "a object object"),
                                         ({1, 2}, "a set object"), (np.datetime64("2020-01-01"), "a datetime64 object"),
                                         (type("V" * 150, (), {})(), "a " + "V" * 100 + " object")],
                         ids=["builtin", "lambda", "object", "set", "datetime", "long-name"])
def test_anything_else_is_not_data_and_each_side_says_so_its_way(value, what):
    """Anything else (a function, an object, a set, a date) is NotData naming what it is (a class name cut to 100
    characters): the worker's message says the check passed it; the student's that it is not data."""
    with pytest.raises(NotData) as raised:
        enc(value, trusted=True)
    assert str(raised.value) == f"the check passed {what} to your function: only data crosses into the sandbox"
    with pytest.raises(NotData) as raised:
        enc(value, trusted=False)
    assert str(raised.value).startswith(f"it is {what}, not data (return tensors, arrays")


def dec(data, trusted=False, pass_=None):
    return Link(socket.socketpair()[0], trusted=trusted).dec(data, pass_ or _Dec())


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2**62, -(2**70), 1.5, "é", math.inf, -math.inf, (), (1, (2,)), [], [1, [2, "x"]],
    {}, {"a": 1, 2: [3], (1, "b"): None, None: 0, 1.5: 2}, 1 - 2j, b"\x00\xff", slice(None, 3, None),
    slice(1, None, -1), slice(0, 10, 2), Ellipsis,
    torch.device("cpu"), torch.Size([3, 0]), torch.int16, np.int8(-3), np.float32(0.25), np.bool_(False),
    np.complex64(1j),
], ids=repr)
def test_each_value_comes_back_as_sent(value):
    """Every kind of data comes back equal and of the same type through the JSON text of its encoding."""
    back = dec(json.loads(json.dumps(enc(value, trusted=False))))
    assert back == value and type(back) is type(value)
    if isinstance(value, dict):
        assert list(back) == list(value)


def test_nan_comes_back_as_nan():
    """NaN is sent as {"float": "nan"} and comes back a NaN float."""
    back = dec({"float": "nan"})
    assert isinstance(back, float) and math.isnan(back)


def test_a_generator_comes_back_in_its_state():
    """A generator comes back as a new generator in the state it was sent in: it draws the same numbers."""
    generator = torch.Generator().manual_seed(5)
    torch.rand(3, generator=generator)
    back = dec(json.loads(json.dumps(enc(generator))))
    assert back is not generator and torch.equal(torch.rand(4, generator=back), torch.rand(4, generator=generator))


def test_a_collecting_decoding_keeps_tensors_arrays_and_generators_in_order():
    """A collecting decoding keeps the tensors, arrays and generators it reads, in order; one that does not
    collect keeps none."""
    data = json.loads(json.dumps(enc([torch.ones(1), np.zeros(2), torch.Generator(), {"t": torch.zeros(3)}])))
    pass_ = _Dec(collect=True)
    back = dec(data, pass_=pass_)
    assert pass_.tensors[0] is back[0] and pass_.tensors[1] is back[3]["t"] and len(pass_.tensors) == 2
    assert pass_.arrays[0] is back[1] and pass_.generators[0] is back[2]
    pass_ = _Dec()
    dec(data, pass_=pass_)
    assert (pass_.tensors, pass_.arrays, pass_.generators) == ([], [], [])


def test_decoding_counts_nodes_and_levels_like_encoding(monkeypatch):
    """Decoding counts a node per value and a level per container like encoding: MAX_DEPTH levels are read, one
    more is a broken protocol ("too large"); so are more than MAX_NODES values."""
    assert dec(enc(nested(48))) == nested(48)
    deeper = {"list": [enc(nested(48))]}
    with pytest.raises(ProtocolError, match="too large"):
        dec(deeper)
    with pytest.raises(Lost, match=r"\(too large\)"):
        dec(deeper, trusted=True)
    pass_ = _Dec()
    dec({"dict": [["a", {"list": [1, 2]}]]}, pass_=pass_)
    assert pass_.nodes == 5
    monkeypatch.setattr(link_module, "MAX_NODES", 4)
    assert dec({"list": [1, 2, 3]}) == [1, 2, 3]
    with pytest.raises(ProtocolError, match="too large"):
        dec({"list": [1, 2, 3, 4]})


@pytest.mark.parametrize("data, message", [
    ({}, "bad value"), ([1], "bad value"), ({"what": 1}, "unknown value"), ({"Tuple": []}, "unknown value"),
    ({"list": "abc"}, "bad sequence"), ({"tuple": {"a": 1}}, "bad sequence"), ({"list": None}, "bad sequence"),
    ({"dict": {"a": 1}}, "bad dict$"), ({"dict": [["a"]]}, "bad dict item"), ({"dict": [["a", 1, 2]]}, "bad dict item"),
    ({"dict": [("a", 1)]}, "bad dict item"), ({"dict": ["ab"]}, "bad dict item"),
    ({"dict": [[{"list": []}, 1]]}, "unhashable dict key"), ({"dict": [[{"dict": []}, 1]]}, "unhashable dict key"),
    ({"dict": [[{"tensor": "uint8", "shape": [], "data": "AQ=="}, 1]]}, "unhashable dict key"),
    ({"dict": [[{"ndarray": "|u1", "shape": [], "data": "AQ=="}, 1]]}, "unhashable dict key"),
    ({"dict": [[{"tuple": [{"list": []}]}, 1]]}, r"bad value \(TypeError\)"),
    ({"bigint": 12}, "bad int"), ({"bigint": "1" * 4001}, "bad int"), ({"bigint": "12a"}, r"bad value \(ValueError\)"),
    ({"float": "1.5"}, "bad float"), ({"float": "Infinity"}, "bad float"), ({"float": "NaN"}, "bad float"),
    ({"float": "+inf"}, "bad float"),
    ({"dtype": "float"}, "bad dtype"), ({"dtype": "torch.float32"}, "bad dtype"), ({"dtype": "Float32"}, "bad dtype"),
    ({"dtype": ["float32"]}, r"bad value \(TypeError\)"),
    ({"size": (2,)}, "bad size"), ({"size": [2.0]}, "bad size"), ({"size": [True]}, "bad size"),
    ({"size": "2"}, "bad size"),
    ({"complex": [1.0]}, r"bad value \(ValueError\)"), ({"complex": [1.0, "x"]}, r"bad value \(ValueError\)"),
    ({"bytes": "YQ"}, "bad base64"), ({"bytes": None}, "expected base64 text"),
    ({"slice": [1, 2]}, r"bad value \(ValueError\)"),
    ({"device": "cuda"}, "only cpu tensors are graded"), ({"device": "CPU"}, "only cpu tensors are graded"),
    ({"device": "cpu:0"}, "only cpu tensors are graded"),
    ({"npscalar": "<U1", "data": "YQAAAA=="}, "bad numpy scalar"), ({"npscalar": "O", "data": ""}, "bad numpy scalar"),
    ({"npscalar": "<i4", "data": "AQAA"}, "bad numpy scalar"),
    ({"npscalar": "<i4", "data": "AQAAAAA="}, "bad numpy scalar"),
    ({"npscalar": "nonsense", "data": ""}, r"bad value \(TypeError\)"),
    ({"generator": "AAAA"}, r"bad value \(RuntimeError\)"), ({"generator": 5}, "expected base64 text"),
    ({"tensor": "int8", "shape": [2], "data": "AQ=="}, "wrong size"),
    ({"ndarray": "O", "shape": [], "data": ""}, "bad array"),
], ids=lambda v: None if isinstance(v, dict | list) else v)
def test_a_bad_value_is_a_broken_protocol_saying_what(data, message):
    """Data that is not a valid encoding breaks the protocol, with what was wrong: an empty or unknown tag, a
    sequence or dict not held as a list, a dict item not a [key, value] list, an unhashable key (a list, dict,
    tensor or array), a bigint that is not decimal text of at most 4,000 digits, a float other than "nan", "inf",
    "-inf", a dtype not one of the twelve, a size not a list of ints, a device other than "cpu", a numpy scalar of
    another kind or size; any other malformation as "bad value (its error's type)"."""
    with pytest.raises(ProtocolError, match=message):
        dec(data)
    with pytest.raises(Lost) as lost:
        dec(data, trusted=True)
    assert lost.value.kind == "protocol" and lost.value.reason.startswith("the student process broke the protocol (")


def test_a_bigint_of_4000_digits_is_read():
    """A bigint of exactly 4,000 digits is read (4,001 is refused above)."""
    assert dec({"bigint": "9" * 4000}) == 10**4000 - 1


@pytest.mark.parametrize("data, expected", [({"tuple": [1], "list": [2]}, (1,)), ({"list": [2]}, [2]),
                                            ({"ellipsis": False}, Ellipsis), ({"complex": [1, 2]}, 1 + 2j)])
def test_tagged_forms_are_read_by_their_tag(data, expected):
    """A "tuple" tag reads a tuple (over a "list" beside it); "ellipsis" is Ellipsis whatever its value; a complex's
    parts may be ints."""
    back = dec(data)
    assert back == expected and type(back) is type(expected)


def test_a_numpy_scalar_is_read_as_its_dtype():
    """A numpy scalar is read from exactly its dtype's bytes (in its byte order), as a numpy scalar of that kind."""
    back = dec({"npscalar": ">i4", "data": b64(b"\x00\x00\x01\x00")})
    assert back == 256 and type(back) is np.int32


def test_the_numbers_of_a_students_result_are_limited_in_all(monkeypatch):
    """With an element limit, the elements of every tensor and array of one result count together: exactly the
    limit is read, one more is TooLarge naming the limit; without a limit nothing is counted."""
    data = enc([torch.zeros(2, 2), np.zeros(3), {"t": torch.zeros(1)}])
    pass_ = _Dec(max_elements=8)
    dec(data, pass_=pass_)
    assert pass_.elements == 8
    with pytest.raises(TooLarge, match="more than 7 numbers"):
        dec(data, pass_=_Dec(max_elements=7))
    with pytest.raises(TooLarge, match="more than 1,048,576 numbers"):
        dec({"tensor": "uint8", "shape": [2**20 + 1], "data": ""}, pass_=_Dec(max_elements=wire.MAX_RESULT_ELEMENTS))
    pass_ = _Dec()
    dec(data, pass_=pass_)
    assert pass_.elements == 0


@pytest.mark.parametrize("shape", [None, (2,), [2.0], "2"])
def test_a_shape_that_cannot_be_counted_is_left_to_the_payloads_check(shape):
    """A tensor's shape that is not a list of ints is not counted (no crash) but refused as a bad tensor."""
    with pytest.raises(ProtocolError, match="bad tensor"):
        dec({"tensor": "uint8", "shape": shape, "data": ""}, pass_=_Dec(max_elements=1))


def test_a_received_tensor_keeps_its_requires_grad_on_the_students_side():
    """Without a grad link (the student's side), a tensor is read as sent, requiring grad when its "rg" is True."""
    assert dec(enc(torch.ones(2, requires_grad=True))).requires_grad is True
    assert dec(enc(torch.ones(2))).requires_grad is False


class FakeVjpLink:
    """Stands for the worker's link where a returned tensor's backward asks for the VJP."""

    def __init__(self, grads=None, error=None):
        self.grads = grads
        self.error = error
        self.asked = []

    def vjp(self, call_id, out_index, grad_output, count):
        self.asked.append((call_id, out_index, grad_output.tolist(), count))
        if self.error is not None:
            raise self.error
        return self.grads


def returned(tensor, out=0, rg=True):
    payload = _tensor_payload(tensor, _Enc())
    payload.update(rg=rg)
    if out is not None:
        payload["out"] = out
    return payload


@pytest.mark.parametrize("rg, out, dtype, requires_grad", [
    (True, 0, torch.float32, True), (False, 0, torch.float32, False), (True, None, torch.float32, False),
    (True, True, torch.float32, False), (True, "0", torch.float32, False), (True, 0, torch.int64, False),
    (True, 0, torch.complex64, True), (1, 0, torch.float32, False),
])
def test_a_returned_tensor_requires_grad_only_as_an_indexed_floating_output(rg, out, dtype, requires_grad):
    """On the worker's side a returned tensor requires grad only when its "rg" is exactly True, its "out" an int
    index (not a bool) and it is floating or complex; with no input requiring grad it is a leaf that requires
    grad."""
    pass_ = _Dec(grad_link=(FakeVjpLink(), 1, []), collect=True)
    tensor = dec(returned(torch.ones(2, dtype=dtype), out=out, rg=rg), trusted=True, pass_=pass_)
    assert tensor.requires_grad is requires_grad and tensor.is_leaf


def test_a_returned_tensor_backpropagates_through_the_students_vjp():
    """With inputs that require grad, a returned tensor's backward asks the student process for the VJP of that call
    and output with the incoming gradient, and gives each input its gradient (reshaped to the input's shape when it
    has its number of elements, cast to its dtype; None when it has another number)."""
    x = torch.zeros(2, 2, requires_grad=True)
    y = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    z = torch.zeros(2, requires_grad=True)
    fake = FakeVjpLink(grads=[torch.arange(4.0), torch.ones(3, dtype=torch.float32), torch.ones(5)])
    out = dec(returned(torch.ones(2), out=3), trusted=True, pass_=_Dec(grad_link=(fake, 7, [x, y, z])))
    assert out.grad_fn is not None and torch.equal(out.detach(), torch.ones(2))
    (out * torch.tensor([2.0, 3.0])).sum().backward()
    assert fake.asked == [(7, 3, [2.0, 3.0], 3)]
    assert torch.equal(x.grad, torch.arange(4.0).reshape(2, 2))
    assert y.grad.dtype == torch.float64 and torch.equal(y.grad, torch.ones(3, dtype=torch.float64))
    assert z.grad is None


@pytest.mark.parametrize("error, message", [
    (Lost("crashed", "the student process ended"), "the student process is gone: the student process ended"),
    (StudentError("Traceback: boom"), "backpropagating through your output failed in your code:\nTraceback: boom"),
])
def test_a_failed_vjp_is_a_runtime_error_of_the_backward(error, message):
    """A VJP that cannot be had (the student process gone, or the student's code raising) is a RuntimeError of the
    backward pass saying which."""
    x = torch.zeros(2, requires_grad=True)
    out = _attach_remote_grad(FakeVjpLink(error=error), 1, 0, torch.ones(2), [x])
    with pytest.raises(RuntimeError) as raised:
        out.sum().backward()
    assert str(raised.value) == message


def test_the_workers_vjp_request_and_its_answer(sockets):
    """The worker asks for a VJP with {"op": "vjp", "call", "out", "grad": the encoded gradient}; the answer must be
    a list of as many gradients as inputs, each a tensor or None, else the protocol is broken ("bad gradients")."""
    ours = worker(sockets.ours)
    answer = {"list": [enc(torch.ones(1)), None]}
    sockets.peer.sendall(frame({"k": "r", "id": 1, "ok": answer}) + frame({"k": "r", "id": 2, "ok": answer})
                         + frame({"k": "r", "id": 3, "ok": {"list": [1, None]}}))
    grads = ours.vjp(4, 1, torch.full((1,), 2.0, requires_grad=True), 2)
    assert torch.equal(grads[0], torch.ones(1)) and grads[1] is None
    assert read_frame(sockets.peer) == {"k": "q", "id": 1, "op": "vjp", "call": 4, "out": 1,
                                        "grad": _tensor_payload(torch.full((1,), 2.0), _Enc())}
    with pytest.raises(Lost, match="bad gradients"):
        ours.vjp(4, 1, torch.ones(1), 3)
    more = worker(socket.socketpair()[0])
    more.request = lambda op, payload: {"k": "r", "ok": answer}
    with pytest.raises(Lost, match="bad gradients"):
        more.vjp(4, 1, torch.ones(1), 1)
    fresh = worker(socket.socketpair()[0])
    fresh.request = lambda op, payload: {"k": "r", "ok": {"list": [1, None]}}
    with pytest.raises(Lost, match="bad gradients"):
        fresh.vjp(4, 1, torch.ones(1), 2)


# -- calls -----------------------------------------------------------------------------------------------------------
def calling(response, trusted=True):
    """A worker link whose requests get ``response``; the requests sent are noted on it."""
    ours = Link(socket.socketpair()[0], trusted=trusted)
    ours.sent = []

    def request(op, payload):
        ours.sent.append((op, payload))
        return response(payload) if callable(response) else response
    ours.request = request
    return ours


def test_a_call_sends_the_arguments_as_data_with_the_rng_states(saved_rngs):
    """Calling the student's function sends {"function", "args": the encoded list of arguments, "kwargs": the
    encoded dict of keyword arguments, "rng": the global RNG states}; its value is the decoded "value"."""
    torch.manual_seed(0)
    ours = calling({"ok": {"call": 3, "value": {"tuple": [1, "a"]}}})
    assert ours.call_student("f", (1, torch.ones(1)), {"k": [2]}) == (1, "a")
    ((op, payload),) = ours.sent
    assert op == "call" and payload["function"] == "f"
    assert payload["args"] == {"list": [1, _tensor_payload(torch.ones(1), _Enc())]}
    assert payload["kwargs"] == {"dict": [["k", {"list": [2]}]]}
    assert payload["rng"] == _rng_get()


def test_a_calls_arguments_too_large_to_send_are_a_value_error(monkeypatch):
    """Arguments too large to send are a ValueError of the check ("the check's arguments cannot be sent")."""
    monkeypatch.setattr(link_module, "MAX_NODES", 3)
    ours = calling({"ok": {"call": 1, "value": None}})
    with pytest.raises(ValueError, match="the check's arguments cannot be sent: the value is too large"):
        ours.call_student("f", (1, 2, 3), {})
    assert ours.sent == []


@pytest.mark.parametrize("response, message", [
    ({"ok": 5}, "bad call result"), ({"ok": [1]}, "bad call result"), ({}, "bad call result"),
    ({"ok": {"value": 1}}, "bad call id"), ({"ok": {"call": "1", "value": 1}}, "bad call id"),
    ({"ok": {"call": True, "value": 1}}, "bad call id"), ({"ok": {"call": 1.0, "value": 1}}, "bad call id"),
    ({"ok": {"call": 1, "value": 1, "mutated": [[5, {}]]}}, "bad side effects"),
    ({"ok": {"call": 1, "value": {"what": 1}}}, "unknown value"),
])
def test_a_calls_result_must_be_a_dict_with_an_int_call_id(response, message):
    """A call's result is a dict holding an int "call" id (not a bool, not text) and a valid value; else the
    protocol is broken, saying what."""
    with pytest.raises(Lost, match=message):
        calling(response).call_student("f", (), {})


def test_a_calls_error_is_the_students_error():
    """A call answered with an error raises it as the student's error."""
    with pytest.raises(StudentError, match="ValueError: no"):
        calling({"err": {"type": "ValueError", "message": "no"}}).call_student("f", (), {})


def test_a_result_with_too_many_numbers_is_the_students_error():
    """A result holding more than MAX_RESULT_ELEMENTS numbers is the student's error ("your function's result
    cannot be graded"), not a broken protocol; exactly MAX_RESULT_ELEMENTS is read."""
    ok = {"tensor": "uint8", "shape": [2**20], "data": b64(bytes(2**20))}
    assert calling({"ok": {"call": 1, "value": ok}}).call_student("f", (), {}).numel() == 2**20
    big = {"tensor": "uint8", "shape": [2**20 + 1], "data": ""}
    with pytest.raises(StudentError, match="ValueError: your function's result cannot be graded: it holds more than "
                                           "1,048,576 numbers"):
        calling({"ok": {"call": 1, "value": big}}).call_student("f", (), {})


def test_a_returned_tensor_is_connected_to_the_calls_inputs_that_require_grad():
    """A returned tensor's backward goes to the call's tensor arguments that require grad (in order), under the
    call's id."""
    x, w = torch.ones(2), torch.ones(2, requires_grad=True)
    ours = calling({"ok": {"call": 9, "value": returned(torch.ones(2), out=0)}})
    asked = []

    def vjp(call_id, out_index, grad_output, count):
        asked.append((call_id, out_index, count))
        return [torch.full((2,), 4.0)]
    ours.vjp = vjp
    out = ours.call_student("f", (x, [w]), {})
    out.sum().backward()
    assert asked == [(9, 0, 1)] and torch.equal(w.grad, torch.full((2,), 4.0))


def test_the_functions_changes_to_its_arguments_are_applied():
    """A function's in-place changes come back and are applied to the check's own objects: a tensor of the same
    shape and dtype is copied into (the same object), one of another shape or dtype replaces its data (cast to the
    argument's dtype when that is floating); an array of the same shape is copied into, casting; a generator's
    state is set."""
    t, u, i = torch.zeros(2), torch.zeros(2), torch.zeros(2, dtype=torch.int64)
    j = torch.zeros(2, dtype=torch.int64)
    a, n, g = np.zeros(2, dtype=np.float32), np.zeros(2, dtype=np.int32), torch.Generator()
    ours = calling(lambda payload: {"ok": {
        "call": 1, "value": None,
        "mutated": [[0, _tensor_payload(torch.tensor([1.0, 2.0]), _Enc())],
                    [1, _tensor_payload(torch.tensor([1, 2, 3]), _Enc())],
                    [2, _tensor_payload(torch.tensor([5.0, 6.0, 7.0]), _Enc())],
                    [3, _tensor_payload(torch.tensor([1.5, 2.5]), _Enc())]],
        "mutated_arrays": [[0, _array_payload(np.array([1.5, 2.5]), _Enc())],
                           [1, _array_payload(np.array([1.75, -2.5]), _Enc())]],
        "generators": [[0, b64(torch.Generator().manual_seed(3).get_state().numpy().tobytes())]]}})
    view = t[:1]
    ours.call_student("f", (t, u, i, j, a, n, g), {})
    assert view.tolist() == [1.0]                                # copied into: a view of it sees the change
    assert t.tolist() == [1.0, 2.0]
    assert u.tolist() == [1.0, 2.0, 3.0] and u.dtype == torch.float32
    assert i.tolist() == [5.0, 6.0, 7.0] and i.dtype == torch.float32
    assert j.tolist() == [1.5, 2.5] and j.dtype == torch.float32  # same shape, another dtype: replaced, not cast
    assert a.tolist() == [1.5, 2.5] and a.dtype == np.float32
    assert n.tolist() == [1, -2] and n.dtype == np.int32      # cast as numpy casts, even unsafely
    assert torch.equal(torch.rand(3, generator=g), torch.rand(3, generator=torch.Generator().manual_seed(3)))


def test_an_array_changed_to_another_shape_or_read_only_is_left_alone():
    """A changed array of another shape is not applied, nor one into a read-only argument."""
    a, r = np.zeros(2), np.zeros(2)
    r.flags.writeable = False
    ours = calling({"ok": {"call": 1, "value": None, "mutated_arrays": [
        [0, _array_payload(np.ones(3), _Enc())], [1, _array_payload(np.ones(2), _Enc())]]}})
    ours.call_student("f", (a, r), {})
    assert a.tolist() == [0.0, 0.0] and r.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("field, index, message", [
    ("mutated", 1, "bad mutated index"), ("mutated", -1, "bad mutated index"), ("mutated", True, "bad mutated index"),
    ("mutated", "0", "bad mutated index"), ("mutated_arrays", 1, "bad mutated array index"),
    ("mutated_arrays", -1, "bad mutated array index"), ("generators", 1, "bad generator index"),
    ("generators", -1, "bad generator index"), ("generators", True, "bad generator index"),
])
def test_a_change_to_an_argument_that_was_not_sent_is_a_broken_protocol(field, index, message):
    """A change names a tensor, array or generator argument by its index among those sent (0 <= index < their
    number, an int): any other index breaks the protocol."""
    payloads = {"mutated": _tensor_payload(torch.ones(1), _Enc()), "mutated_arrays": _array_payload(np.ones(1), _Enc()),
                "generators": b64(torch.Generator().get_state().numpy().tobytes())}
    ours = calling({"ok": {"call": 1, "value": None, field: [[index, payloads[field]]]}})
    with pytest.raises(Lost, match=rf"bad side effects \({message}\)"):
        ours.call_student("f", (torch.zeros(1), np.zeros(1), torch.Generator()), {})


def test_the_functions_rng_states_are_applied_and_bad_ones_refused(saved_rngs):
    """The global RNG states the function left are set in the worker; a bad one breaks the protocol."""
    torch.manual_seed(31)
    left = _rng_get()
    expected = torch.rand(2)
    torch.manual_seed(32)
    calling({"ok": {"call": 1, "value": None, "rng": left}}).call_student("f", (), {})
    assert torch.equal(torch.rand(2), expected)
    with pytest.raises(Lost, match="bad side effects"):
        calling({"ok": {"call": 1, "value": None, "rng": {}}}).call_student("f", (), {})


# -- the handles -----------------------------------------------------------------------------------------------------
def test_a_student_function_handle_can_only_be_called_by_name():
    """The worker's handle on a student's function is called by its name through the link, with the arguments as a
    tuple and the keyword arguments as a dict; its __name__ is that name; it holds nothing else."""
    calls = []
    fake = SimpleNamespace(call_student=lambda name, args, kwargs: calls.append((name, args, kwargs)) or 42)
    handle = StudentFunction(fake, "policy_loss")
    assert handle(1, x=2) == 42 and calls == [("policy_loss", (1,), {"x": 2})]
    assert handle.__name__ == "policy_loss"
    assert repr(handle) == "<your function policy_loss (in the student process)>"
    assert StudentFunction.__slots__ == ("_link", "_name")
    with pytest.raises(AttributeError):
        handle.anything = 1


def test_an_episode_case_is_asked_by_name_and_its_outcome_checked():
    """An episode case is asked as {"op": "episode", "function", "env_id", "controller", "seed"}; its outcome must be
    a dict whose "stepped_past_end" is a bool; a result too large is the student's error."""
    ours = calling({"ok": enc({"stepped_past_end": False, "steps": 3})})
    assert StudentFunction(ours, "play").play_episode_case("CartPole-v1", "random", 4) == {"stepped_past_end": False,
                                                                                           "steps": 3}
    assert ours.sent == [("episode", {"function": "play", "env_id": "CartPole-v1", "controller": "random", "seed": 4})]
    for outcome in ({"stepped_past_end": 0}, {"steps": 3}, [False]):
        with pytest.raises(Lost, match="bad episode outcome"):
            StudentFunction(calling({"ok": enc(outcome)}), "play").play_episode_case("e", "c", 0)
    big = {"dict": [["x", {"tensor": "uint8", "shape": [2**20 + 1], "data": ""}]]}
    with pytest.raises(StudentError, match="your function's result cannot be graded"):
        StudentFunction(calling({"ok": big}), "play").play_episode_case("e", "c", 0)


def test_a_stage_case_is_sent_as_data_and_its_outcome_checked(monkeypatch):
    """A loop stage's case is sent as {"op": "stage", "function", "spec": the encoded spec}; its outcome must be a
    dict whose "calls" is a list; a spec too large to send is a ValueError of the check, a result too large the
    student's error."""
    ours = calling({"ok": enc({"calls": [1], "counts": 2})})
    assert StudentFunction(ours, "loop").play_case({"n": 2}) == {"calls": [1], "counts": 2}
    assert ours.sent == [("stage", {"function": "loop", "spec": {"dict": [["n", 2]]}})]
    for outcome in ({"calls": (1,)}, {"counts": 2}, "calls"):
        with pytest.raises(Lost, match="bad stage outcome"):
            StudentFunction(calling({"ok": enc(outcome)}), "loop").play_case({})
    big = {"dict": [["calls", {"tensor": "uint8", "shape": [2**20 + 1], "data": ""}]]}
    with pytest.raises(StudentError, match="your function's result cannot be graded"):
        StudentFunction(calling({"ok": big}), "loop").play_case({})
    monkeypatch.setattr(link_module, "MAX_NODES", 2)
    with pytest.raises(ValueError, match="the check's case cannot be sent"):
        StudentFunction(calling({"ok": 1}), "loop").play_case({"a": 1})


def test_a_name_that_is_not_data_says_so_on_any_use():
    """A name the student defined that is neither data nor a function stands as a placeholder: any attribute or
    call is a TypeError naming it, its type and what the grader takes."""
    held = Unavailable("env", "CartPoleEnv")
    message = ("env is a CartPoleEnv object in your notebook: the grader takes only functions and data (numbers, "
               "strings, tensors, arrays, lists, dicts) from your answer cells")
    with pytest.raises(TypeError) as raised:
        held.reset()
    assert str(raised.value) == message
    with pytest.raises(TypeError) as raised:
        held(1)
    assert str(raised.value) == message


def test_a_frame_read_in_pieces_takes_exactly_its_own_bytes(sockets):
    """``_recv_exact(size)`` asks the socket for at most what is still missing of the frame: when a frame arrives in two
    pieces and the second piece carries the next frame too, the first recv stops at its own end and the next frame is
    read whole (a read of ``size`` bytes again would swallow the next frame's start)."""
    import threading
    import time
    first, second = frame({"op": "a", "data": "x" * 300}), frame({"op": "b", "n": 2})

    def write():
        sockets.peer.sendall(first[:100])
        time.sleep(0.2)
        sockets.peer.sendall(first[100:] + second)
    writer = threading.Thread(target=write)
    writer.start()
    link = student(sockets.ours)
    try:
        assert link.recv() == {"op": "a", "data": "x" * 300}
        assert link.recv() == {"op": "b", "n": 2}
    finally:
        writer.join()
