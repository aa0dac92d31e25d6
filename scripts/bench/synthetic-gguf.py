#!/usr/bin/env python3
"""A model file of the same shapes and quantization types as a real GGUF, with random weights:
what a speed benchmark needs where the real file cannot travel (the device machine of a GPU
benchmark is reached with a 64 MiB working tree and no network).

  synthetic-gguf.py skeleton REAL.gguf OUT.skeleton   # here: header, metadata, tensor index
  synthetic-gguf.py expand OUT.skeleton MODEL.gguf    # there: numpy only, a few seconds per GB
  synthetic-gguf.py scaled REAL.gguf OUT.skeleton KEY=VALUE...
      # a larger sibling of the same family, tokenizer and types: e.g. Qwen2.5 7B from the 1.5B,
      # qwen2.embedding_length=3584 qwen2.feed_forward_length=18944 qwen2.attention.head_count=28
      # qwen2.attention.head_count_kv=4 (every tensor dimension equal to an old width takes the
      # new one; the header keeps its size, so its bytes are patched in place)

The skeleton is the real file up to its tensor data, plus a JSON manifest of each tensor's
offset, size and type (appended after a marker). Expanding fills every tensor with random blocks
whose scales are small finite f16 values and whose float tensors are small finite numbers, so
the forward pass computes real (meaningless) numbers at full speed: decode and prefill speed
depend on shapes and types, never on values.
"""
import json
import sys

MARKER = b"\nUMA-SYNTHETIC-MANIFEST\n"
# ggml type id -> (block bytes, block elements, byte offsets of the block's f16 scales)
BLOCKS = {
    0: (4, 1, None),         # F32
    1: (2, 1, None),         # F16
    2: (18, 32, [0]),        # Q4_0
    3: (20, 32, [0, 2]),     # Q4_1
    6: (22, 32, [0]),        # Q5_0
    7: (24, 32, [0, 2]),     # Q5_1
    8: (34, 32, [0]),        # Q8_0
    10: (84, 256, [80, 82]),  # Q2_K
    11: (110, 256, [108]),   # Q3_K
    12: (144, 256, [0, 2]),  # Q4_K
    13: (176, 256, [0, 2]),  # Q5_K
    14: (210, 256, [208]),   # Q6_K
    30: (2, 1, None),        # BF16
}


def skeleton(real, out):
    sys.path.insert(0, sys.argv[4] if len(sys.argv) > 4 else "gguf-py")
    from gguf import GGUFReader  # llama.cpp's gguf-py

    reader = GGUFReader(real)
    tensors = [
        {"offset": int(t.data_offset), "bytes": int(t.n_bytes), "type": int(t.tensor_type)}
        for t in reader.tensors
    ]
    data_start = min(t["offset"] for t in tensors)
    end = max(t["offset"] + t["bytes"] for t in tensors)
    with open(real, "rb") as f:
        head = f.read(data_start)
    manifest = {"data_start": data_start, "size": end, "tensors": tensors}
    with open(out, "wb") as f:
        f.write(head + MARKER + json.dumps(manifest).encode())


def scaled(real, out, settings):
    sys.path.insert(0, "gguf-py")
    import numpy as np
    from gguf import GGUFReader

    reader = GGUFReader(real)
    data_start = min(int(t.data_offset) for t in reader.tensors)
    with open(real, "rb") as f:
        head = bytearray(f.read(data_start))
    arch = bytes(reader.fields["general.architecture"].parts[-1]).decode()

    def value(key):
        field = reader.fields[key]
        return field, int(field.parts[field.data[0]][0])

    def patch(field, part_index, new):
        # The byte offset of one part of a field, from the parts before it.
        offset = field.offset + sum(p.nbytes for p in field.parts[:part_index])
        old = field.parts[part_index]
        head[offset : offset + old.nbytes] = np.array(new, dtype=old.dtype).tobytes()

    old = {key: value(key)[1] for key in settings}
    for key, new in settings.items():
        field, _ = value(key)
        patch(field, field.data[0], [new])
    # Widths that tensor dimensions take: hidden, feed-forward, and the key/value width.
    head_dim = old[f"{arch}.embedding_length"] // old[f"{arch}.attention.head_count"]
    new_kv = settings[f"{arch}.attention.head_count_kv"] * head_dim
    widths = {
        old[f"{arch}.embedding_length"]: settings[f"{arch}.embedding_length"],
        old[f"{arch}.feed_forward_length"]: settings[f"{arch}.feed_forward_length"],
        old[f"{arch}.attention.head_count_kv"] * head_dim: new_kv,
    }
    if len(widths) != 3:
        raise SystemExit("two of the widths are equal: which dimension is which is ambiguous")
    alignment = 32
    offset = 0
    tensors = []
    for t in reader.tensors:
        dims = [widths.get(int(d), int(d)) for d in t.shape]
        block_bytes, block_values, _ = BLOCKS[int(t.tensor_type)]
        elements = int(np.prod(dims))
        nbytes = elements // block_values * block_bytes
        parts = t.field.parts
        # parts: name length, name, dimension count, dimensions, type, offset
        patch(t.field, 3, dims)
        patch(t.field, 5, [offset])
        tensors.append({"offset": data_start + offset, "bytes": nbytes, "type": int(t.tensor_type)})
        offset = (offset + nbytes + alignment - 1) // alignment * alignment
        assert len(parts) == 6
    manifest = {"data_start": data_start, "size": data_start + offset, "tensors": tensors}
    with open(out, "wb") as f:
        f.write(bytes(head) + MARKER + json.dumps(manifest).encode())


def expand(skeleton_path, out):
    import numpy as np

    blob = open(skeleton_path, "rb").read()
    head, manifest = blob.split(MARKER, 1)
    manifest = json.loads(manifest)
    rng = np.random.default_rng(0)
    with open(out, "wb") as f:
        f.write(head)
        f.truncate(manifest["size"])
        for t in manifest["tensors"]:
            if t["type"] not in BLOCKS:
                raise SystemExit(f"type {t['type']} has no synthetic fill")
            block_bytes, _, scales = BLOCKS[t["type"]]
            if t["type"] == 0:
                data = rng.uniform(-0.05, 0.05, t["bytes"] // 4).astype(np.float32).tobytes()
            elif t["type"] == 1:
                data = rng.uniform(-0.05, 0.05, t["bytes"] // 2).astype(np.float16).tobytes()
            elif t["type"] == 30:
                values = rng.uniform(-0.05, 0.05, t["bytes"] // 2).astype(np.float32)
                data = (values.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            else:
                blocks = rng.integers(0, 256, (t["bytes"] // block_bytes, block_bytes), dtype=np.uint8)
                scale = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
                for s in scales:
                    blocks[:, s : s + 2] = scale
                data = blocks.tobytes()
            f.seek(t["offset"])
            f.write(data)


if __name__ == "__main__":
    if sys.argv[1] == "skeleton":
        skeleton(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "expand":
        expand(sys.argv[2], sys.argv[3])
    elif sys.argv[1] == "scaled":
        pairs = (arg.split("=", 1) for arg in sys.argv[4:])
        scaled(sys.argv[2], sys.argv[3], {key: int(value) for key, value in pairs})
    else:
        raise SystemExit(__doc__)
