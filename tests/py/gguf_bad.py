"""Builders for malformed GGUF files, shared by the malformed-file suite (and its ASan run).

Everything is built by hand with struct so any field can be set to any value.
"""
import random
import struct

U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
       U64: "<Q", I64: "<q", F64: "<d"}
FIXED = {U8: 1, I8: 1, U16: 2, I16: 2, U32: 4, I32: 4, F32: 4, BOOL: 1, U64: 8, I64: 8, F64: 8}
BIG = 1 << 63
MAX64 = (1 << 64) - 1

# ggml type id -> (block size, bytes per block) for the few types used here
F32_T, F16_T, Q4_0_T = 0, 1, 2
TYPE_SIZES = {F32_T: (1, 4), F16_T: (1, 2), Q4_0_T: (32, 18)}


def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def header(n_tensors, n_kv, version=3, magic=b"GGUF"):
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def kv(key, vtype, value):
    """One metadata pair; value is a python value (scalars, str, or (elem_type, [items]) for arrays)."""
    return gstr(key) + struct.pack("<I", vtype) + payload(vtype, value)


def payload(vtype, value):
    if vtype == STR:
        return gstr(value)
    if vtype == ARR:
        et, items = value
        return struct.pack("<IQ", et, len(items)) + b"".join(payload(et, x) for x in items)
    return struct.pack(FMT[vtype], value)


def tinfo(name, ne, ttype, offset):
    return gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne) + \
        struct.pack("<IQ", ttype, offset)


def pad(b, align=32):
    return b + b"\0" * (-len(b) % align)


def nbytes(ne, ttype):
    bs, ts = TYPE_SIZES[ttype]
    n = 1
    for d in ne:
        n *= d
    return n // bs * ts


def model(tensors, kvs=(), align=32, data_len=None):
    """A complete file: tensors = [(name, ne, type, offset)]. Tensors with offset None are laid out in order
    and get data bytes; explicit offsets are written as given (data_len sets the data size then)."""
    infos, off = [], 0
    for name, ne, tt, o in tensors:
        if o is None:
            o = off
            off += nbytes(ne, tt)
            off += -off % align
        infos.append(tinfo(name, ne, tt, o))
    n = off if data_len is None else data_len
    body = pad(header(len(tensors), len(kvs)) + b"".join(kvs) + b"".join(infos), align)
    return body + bytes(random.getrandbits(8) for _ in range(n))


def handmade_cases():
    """(name, bytes) pairs, each of which must be rejected."""
    c = []
    good_kv = kv("general.architecture", STR, "llama")
    t1 = [("a", [8, 2], F32_T, None)]
    c.append(("empty", b""))
    c.append(("3 bytes", b"GGU"))
    c.append(("23 bytes", header(0, 0)[:23]))
    c.append(("bad magic", b"GGUG" + header(0, 0)[4:]))
    c.append(("ggml magic", b"lmgg" + header(0, 0)[4:]))
    for v in (0, 1, 4, 0x03000000, MAX64 & 0xFFFFFFFF):
        c.append((f"version {v}", header(0, 0, version=v) + b"\0" * 8))
    c.append(("tensor count 2^63", header(BIG, 0) + b"\0" * 64))
    c.append(("tensor count max", header(MAX64, 0) + b"\0" * 64))
    c.append(("tensor count 1 no data", header(1, 0)))
    c.append(("kv count 2^63", header(0, BIG) + b"\0" * 64))
    c.append(("kv count max", header(0, MAX64) + good_kv))
    c.append(("kv count one too many", header(0, 2) + good_kv))
    c.append(("key length 2^63", header(0, 1) + struct.pack("<Q", BIG) + b"k" * 32))
    c.append(("key length max", header(0, 1) + struct.pack("<Q", MAX64) + b"k" * 32))
    c.append(("key length past end", header(0, 1) + struct.pack("<Q", 9) + b"abcdefgh"))
    for t in (13, 255, 0xFFFFFFFF):
        c.append((f"value type {t}", header(0, 1) + gstr("k") + struct.pack("<I", t) + b"\0" * 16))
    c.append(("string length 2^63", header(0, 1) + gstr("k") + struct.pack("<IQ", STR, BIG) + b"x" * 16))
    c.append(("string length max", header(0, 1) + gstr("k") + struct.pack("<IQ", STR, MAX64) + b"x" * 16))
    c.append(("string length past end", header(0, 1) + gstr("k") + struct.pack("<IQ", STR, 17) + b"x" * 16))
    for et in (U8, U32, U64, STR, ARR):
        for n in (BIG, MAX64, 1 << 40):
            c.append((f"array<{et}> length {n}", header(0, 1) + gstr("k") + struct.pack("<IIQ", ARR, et, n) + b"\0" * 32))
    c.append(("array elem type 13", header(0, 1) + gstr("k") + struct.pack("<IIQ", ARR, 13, 1) + b"\0" * 16))
    c.append(("array elem type max", header(0, 1) + gstr("k") + struct.pack("<IIQ", ARR, 0xFFFFFFFF, 1) + b"\0" * 16))
    c.append(("array truncated", header(0, 1) + gstr("k") + struct.pack("<IIQ", ARR, U32, 4) + b"\0" * 15))
    nested = struct.pack("<I", ARR) + struct.pack("<IQ", ARR, 1) * 200 + struct.pack("<IQ", U8, 0)
    c.append(("arrays nested 200 deep", header(0, 1) + gstr("k") + nested))
    n = (1 << 23) + 1  # the reader caps the file's total array elements at 2^23
    c.append(("array elements over the cap", header(0, 1) + gstr("k") + struct.pack("<IIQ", ARR, U8, n) + b"\0" * n))
    c.append(("bool value 2", header(0, 1) + kv("k", BOOL, 2)))
    for al in (0, 3, 48, 1 << 31):
        c.append((f"alignment {al}", model(t1, [kv("general.alignment", U32, al)])))
    c.append(("alignment 2^40", model(t1, [kv("general.alignment", U64, 1 << 40)])))
    c.append(("alignment negative", model(t1, [kv("general.alignment", I32, -32)])))
    c.append(("alignment string", model(t1, [kv("general.alignment", STR, "32")])))
    c.append(("duplicate key", header(0, 2) + good_kv + good_kv))
    c.append(("duplicate tensor", model([("a", [8], F32_T, None), ("a", [8], F32_T, None)])))
    c.append(("n_dims 0", model([("a", [], F32_T, 0)])))
    c.append(("n_dims 5", model([("a", [1, 1, 1, 1, 8], F32_T, 0)])))
    c.append(("dim 0", model([("a", [8, 0], F32_T, 0)])))
    c.append(("dim 2^63", model([("a", [BIG], F32_T, 0)])))
    c.append(("dim max", model([("a", [MAX64], F32_T, 0)])))
    c.append(("dims overflow", model([("a", [1 << 32, 1 << 32], F32_T, 0)])))
    c.append(("dims overflow 4d", model([("a", [1 << 16] * 4, F32_T, 0)])))
    c.append(("bytes overflow", model([("a", [1 << 31, 1 << 31], F32_T, 0)])))
    c.append(("huge tensor", model([("a", [1 << 20, 1 << 20], F32_T, 0)])))
    for tt in (4, 5, 16, 29, 39, 1000, 0xFFFFFFFF):
        body = model([("a", [32], F32_T, None)])
        i = body.index(struct.pack("<I", 1) + struct.pack("<Q", 32)) + 12
        c.append((f"tensor type {tt}", body[:i] + struct.pack("<I", tt) + body[i + 4:]))
    c.append(("row not whole blocks", model([("a", [33, 2], Q4_0_T, 0)])))
    c.append(("offset misaligned", model([("a", [8], F32_T, 4)], data_len=64)))
    c.append(("offset past end", model([("a", [8], F32_T, 1 << 20)], data_len=64)))
    c.append(("offset 2^63", model([("a", [8], F32_T, BIG)], data_len=64)))
    c.append(("offset wraps", model([("a", [8], F32_T, MAX64 - 31)], data_len=64)))
    c.append(("overlap", model([("a", [16], F32_T, 0), ("b", [16], F32_T, 32)], data_len=128)))
    c.append(("overlap same offset", model([("a", [8], F32_T, 0), ("b", [8], F32_T, 0)], data_len=128)))
    c.append(("overlap reversed", model([("b", [16], F32_T, 32), ("a", [16], F32_T, 0)], data_len=128)))
    c.append(("overlap inside", model([("a", [64], F32_T, 0), ("b", [8], F32_T, 64)], data_len=256)))
    good = model([("a", [8, 2], F32_T, None), ("b", [64], Q4_0_T, None)], [good_kv])
    c.append(("tensor data truncated", good[:len(good) - 28 - 1]))  # data is 100 bytes + 28 padding
    c.append(("tensor data missing", good[:len(good) - 64 - 36]))
    c.append(("tensor name length huge", header(1, 0) + struct.pack("<Q", BIG) + b"\0" * 64))
    return c


def structural_fields(blob):
    """Walks a well-formed GGUF image; returns [(offset, width, kind)] of every count, length, type and
    tensor field, so corruptions can target the bytes the parser must check."""
    fields = [(8, 8, "tensor count"), (16, 8, "kv count")]
    n_t, n_kv = struct.unpack_from("<QQ", blob, 8)
    p = 24

    def value(p, t):
        if t == STR:
            fields.append((p, 8, "string length"))
            (n,) = struct.unpack_from("<Q", blob, p)
            return p + 8 + n
        if t == ARR:
            fields.append((p, 4, "array type"))
            fields.append((p + 4, 8, "array length"))
            et, n = struct.unpack_from("<IQ", blob, p)
            p += 12
            if et in FIXED:
                return p + FIXED[et] * n
            for i in range(n):
                keep = len(fields)
                p = value(p, et)
                if 2 <= i < n - 1:
                    del fields[keep:]  # of long arrays, only the first two and the last element's fields
            return p
        return p + FIXED[t]

    for _ in range(n_kv):
        fields.append((p, 8, "key length"))
        (n,) = struct.unpack_from("<Q", blob, p)
        p += 8 + n
        fields.append((p, 4, "value type"))
        (t,) = struct.unpack_from("<I", blob, p)
        p = value(p + 4, t)
    for _ in range(n_t):
        fields.append((p, 8, "name length"))
        (n,) = struct.unpack_from("<Q", blob, p)
        p += 8 + n
        fields.append((p, 4, "n_dims"))
        (nd,) = struct.unpack_from("<I", blob, p)
        p += 4
        for _ in range(nd):
            fields.append((p, 8, "dim"))
            p += 8
        fields.append((p, 4, "tensor type"))
        fields.append((p + 4, 8, "tensor offset"))
        p += 12
    return fields, p
