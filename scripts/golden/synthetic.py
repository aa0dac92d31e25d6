#!/usr/bin/env python3
"""Synthetic, seeded golden data for ggml block types, with gguf-py as the reference.

Writes under --out-root (crates/kernels/tests/golden):

  synthetic/<TYPE>.bin           16 random blocks of TYPE as raw bytes (F16/BF16: 16*256 values)
  synthetic/<TYPE>.expected.f32  gguf.quants.dequantize() of that .bin, little-endian f32
  synthetic/digests.tsv          TYPE<TAB>num_elements<TAB>sha256 of the .expected.f32 bytes
  quantize/<TYPE>.f32            seeded 8x256 f32 input (little-endian, row-major)
  quantize/<TYPE>.bin            gguf.quants.quantize(input, TYPE) raw bytes
  quantize/README.md

Random blocks: every byte is random except the f16 scale fields (d, dmin, m), which are replaced by
finite f16 values of modest magnitude, so the dequantized output is finite. MXFP4's E8M0 exponent
byte takes the edge values first (MXFP4_EDGE_E: the subnormal scales, and the largest, where ggml's
products overflow to +-inf, which the digest then holds), moderate scales after. F16/BF16 "blocks" are
random bit patterns with non-finite exponents remapped (covers subnormals, +-0, wide range).
Types that gguf-py cannot dequantize (e.g. Q8_K) are skipped and reported.
Run via scripts/golden/make-golden.sh.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize, quantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import f32_digest, versions, write_atomic  # noqa: E402

SEED = 0x756D61  # "uma"
N_BLOCKS = 16
FLOAT_ELEMS = 16 * 256  # element count for the F16/BF16 synthetic vectors

# Byte offsets of the f16 scale fields inside one block (ggml-common.h block layouts; they match
# the np.hsplit layout in gguf/quants.py):  kind "d" = multiplier, uniform [-2, 2];
# "min" = K-quant dmin (subtracted, non-negative in practice), uniform [0, 1];
# "m" = Q4_1/Q5_1 block minimum (added, either sign), uniform [-1, 1].
SCALES: dict[T, list[tuple[int, str]]] = {
    T.Q4_0: [(0, "d")],                 # d, qs[16]
    T.Q4_1: [(0, "d"), (2, "m")],       # d, m, qs[16]
    T.Q5_0: [(0, "d")],                 # d, qh[4], qs[16]
    T.Q5_1: [(0, "d"), (2, "m")],       # d, m, qh[4], qs[16]
    T.Q8_0: [(0, "d")],                 # d, qs[32]
    T.Q2_K: [(80, "d"), (82, "min")],   # scales[16], qs[64], d, dmin
    T.Q3_K: [(108, "d")],               # hmask[32], qs[64], scales[12], d
    T.Q4_K: [(0, "d"), (2, "min")],     # d, dmin, scales[12], qs[128]
    T.Q5_K: [(0, "d"), (2, "min")],     # d, dmin, scales[12], qh[32], qs[128]
    T.Q6_K: [(208, "d")],               # ql[128], qh[64], scales[16] (i8), d
    T.Q8_K: [],                         # d is f32 at 0, handled below; qs[256] i8, bsums[16] i16
    T.MXFP4: [],                        # e (E8M0 u8) at 0, handled below; qs[16]
}
SYNTH_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0,
               T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K, T.Q8_K, T.MXFP4]
QUANT_TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.MXFP4]
# MXFP4 scales 2^(e-128) (ggml_e8m0_to_fp32_half): e = 0, 1 subnormal, 2 the smallest normal; from
# e = 253 on the largest values overflow to +-inf (12 * 2^125 >= 2^128), at e = 255 all but +-1.
MXFP4_EDGE_E = [0, 1, 2, 127, 128, 252, 253, 254, 255]
MXFP4_FINITE_E = 252  # the largest e whose every value is finite
RANGES = {"d": (-2.0, 2.0), "min": (0.0, 1.0), "m": (-1.0, 1.0)}


def rng_for(qtype: T, purpose: int) -> np.random.Generator:
    # One independent stream per (type, purpose): adding a type never changes the others.
    return np.random.default_rng([SEED, purpose, int(qtype)])


def random_float_bits(rng: np.random.Generator, qtype: T) -> np.ndarray:
    bits = rng.integers(0, 1 << 16, size=FLOAT_ELEMS, dtype=np.uint16)
    exp_mask = np.uint16(0x7C00 if qtype == T.F16 else 0x7F80)
    # exponent all ones (Inf/NaN) -> clear its top bit: finite, still large
    bits = np.where((bits & exp_mask) == exp_mask, bits & np.uint16(0xBFFF), bits).astype("<u2")
    return bits.view(np.uint8)


def random_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    _, type_size = GGML_QUANT_SIZES[qtype]
    blocks = rng.integers(0, 256, size=(N_BLOCKS, type_size), dtype=np.uint8)
    for off, kind in SCALES[qtype]:
        lo, hi = RANGES[kind]
        vals = rng.uniform(lo, hi, size=N_BLOCKS).astype("<f2")
        blocks[:, off:off + 2] = vals.view(np.uint8).reshape(N_BLOCKS, 2)
    if qtype == T.Q8_K:
        vals = rng.uniform(-2.0, 2.0, size=N_BLOCKS).astype("<f4")
        blocks[:, 0:4] = vals.view(np.uint8).reshape(N_BLOCKS, 4)
    if qtype == T.MXFP4:
        e = rng.integers(112, 144, size=N_BLOCKS, dtype=np.uint8)  # scales 2^-16 .. 2^15
        e[:len(MXFP4_EDGE_E)] = MXFP4_EDGE_E
        blocks[:, 0] = e
    return blocks.reshape(-1)


def check_finite(qtype: T, raw: np.ndarray, out: np.ndarray) -> None:
    """Every value is finite, except MXFP4's where its scale makes ggml's product overflow."""
    if qtype != T.MXFP4:
        assert np.isfinite(out).all(), qtype.name
        return
    _, type_size = GGML_QUANT_SIZES[qtype]
    e = raw.reshape(-1, type_size)[:, 0]
    per_block = out.reshape(e.size, -1)
    assert not np.isnan(per_block).any(), qtype.name
    assert np.isfinite(per_block[e <= MXFP4_FINITE_E]).all(), qtype.name
    assert np.isinf(per_block[e > MXFP4_FINITE_E]).any(), qtype.name


def quant_input() -> np.ndarray:
    rng = np.random.default_rng([SEED, 2])
    x = rng.standard_normal((8, 256)).astype(np.float32)
    x[1] *= np.float32(0.01)                      # small scale
    x[2] *= np.float32(50.0)                      # large scale
    x[3] += np.float32(3.0)                       # all-positive-ish, exercises the min of Q4_1/Q5_1
    x[4, :64] = 0.0                               # two whole zero blocks (d == 0 path) ...
    x[4, 64::7] = 0.0                             # ... and scattered zeros
    x[5, 100] = np.float32(1000.0)                # single large outlier
    x[6] *= np.float32(1e-4)                      # tiny values (f16 scale near subnormal range)
    # half-integers with |max| = 127 in every 32-block: Q8_0 gets d = 1 and exact .5 ties
    x[7] = (rng.integers(-127, 127, size=256) + 0.5).astype(np.float32)
    x[7, ::32] = 127.0
    return np.ascontiguousarray(x, dtype="<f4")


def can(fn, *a) -> bool:
    try:
        fn(*a)
        return True
    except NotImplementedError:
        return False


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-root", required=True)
    args = ap.parse_args()
    syn_dir = os.path.join(args.out_root, "synthetic")
    q_dir = os.path.join(args.out_root, "quantize")

    # --- capability probe (reported only) ---
    deq_ok, q_ok = [], []
    for qt in T:
        bs, ts = GGML_QUANT_SIZES[qt]
        if can(dequantize, np.zeros(ts * (256 // bs if bs <= 256 else 1), dtype=np.uint8), qt):
            deq_ok.append(qt.name)
        if qt != T.F32 and can(quantize, np.zeros((1, max(bs, 256)), dtype=np.float32), qt):
            q_ok.append(qt.name)
    print(f"synth   gguf-py can dequantize: {' '.join(deq_ok)}", file=sys.stderr)
    print(f"synth   gguf-py can quantize:   {' '.join(q_ok)}", file=sys.stderr)

    # --- synthetic dequantization ---
    lines = []
    skipped = []
    for qt in SYNTH_TYPES:
        rng = rng_for(qt, 1)
        raw = random_float_bits(rng, qt) if qt in (T.F16, T.BF16) else random_blocks(rng, qt)
        try:
            with np.errstate(over="ignore" if qt == T.MXFP4 else "warn"):
                out = dequantize(raw.copy(), qt)
        except NotImplementedError:
            skipped.append(qt.name)
            continue
        out = np.ascontiguousarray(out, dtype="<f4").reshape(-1)
        check_finite(qt, raw, out)
        bs, ts = GGML_QUANT_SIZES[qt]
        assert out.size == raw.size // ts * bs, qt.name
        write_atomic(os.path.join(syn_dir, f"{qt.name}.bin"), raw.tobytes())
        write_atomic(os.path.join(syn_dir, f"{qt.name}.expected.f32"), out.tobytes())
        lines.append(f"{qt.name}\t{out.size}\t{f32_digest(out)}")
    header = (f"# generated by scripts/golden/synthetic.py ({versions()}, seed {SEED:#x}); columns: type, "
              f"num_elements, sha256 of gguf.quants.dequantize(<TYPE>.bin) as little-endian f32 (= <TYPE>.expected.f32)")
    write_atomic(os.path.join(syn_dir, "digests.tsv"), "\n".join([header, *lines]) + "\n")
    print(f"synth   {syn_dir}: {len(lines)} types; skipped (gguf-py cannot dequantize): {' '.join(skipped) or '-'}",
          file=sys.stderr)

    # --- quantization ---
    x = quant_input()
    written = []
    for qt in QUANT_TYPES:
        q = quantize(x, qt)
        if qt == T.F16:
            q = np.ascontiguousarray(q, dtype="<f2")
        qb = np.ascontiguousarray(q).view(np.uint8).reshape(-1)
        bs, ts = GGML_QUANT_SIZES[qt]
        assert qb.size == x.size // bs * ts, qt.name
        # sanity: the round trip stays close (not part of the golden)
        back = dequantize(qb, qt).reshape(x.shape)
        err = np.abs(back - x).max(axis=1) / np.maximum(np.abs(x).max(axis=1), 1e-30)
        # Q4_0 clips +8 to 7: up to 1/8 of the block max. MXFP4's grid tops out at 12·d for block
        # maxima up to 16·d: up to 1/4.
        assert (err < (0.25 if qt == T.MXFP4 else 0.15)).all(), (qt.name, err)
        write_atomic(os.path.join(q_dir, f"{qt.name}.f32"), x.tobytes())
        write_atomic(os.path.join(q_dir, f"{qt.name}.bin"), qb.tobytes())
        written.append(qt.name)
    write_atomic(os.path.join(q_dir, "README.md"), QUANT_README.format(
        types=", ".join(written), versions=versions(), seed=SEED,
        table="\n".join(f"| {n} | {GGML_QUANT_SIZES[T[n]][0]} | {GGML_QUANT_SIZES[T[n]][1]} | "
                        f"{2048 // GGML_QUANT_SIZES[T[n]][0] * GGML_QUANT_SIZES[T[n]][1]} |" for n in written)))
    print(f"synth   {q_dir}: quantized {' '.join(written)}", file=sys.stderr)


QUANT_README = """\
# Quantization goldens

Generated by `scripts/golden/make-golden.sh` (which runs `scripts/golden/synthetic.py`) with
{versions}; do not edit by hand. Checked by the Rust tests without Python.

For each type below: `<TYPE>.f32` is the input, 8 rows x 256 values, little-endian f32, row-major
(every type gets the same input, seed {seed:#x}); `<TYPE>.bin` is
`gguf.quants.quantize(input, TYPE)` as raw bytes (rows concatenated, blocks in order).

Types: {types}.

| type | block elements | block bytes | .bin bytes |
|------|----------------|-------------|------------|
{table}

Input rows: 0 gaussian; 1 gaussian x 0.01; 2 gaussian x 50; 3 gaussian + 3; 4 gaussian with
elements 0..63 zero (two all-zero 32-blocks) and every 7th from 64 zero; 5 gaussian with one outlier
1000.0 at index 100; 6 gaussian x 1e-4; 7 half-integers in [-126.5, 126.5] with 127.0 at the start
of every 32-block (Q8_0 scale exactly 1, so every value is a rounding tie).

gguf-py quantizes with the same arithmetic as ggml's reference C (`quantize_row_*_ref`): f32 math,
scale `d` stored as f16 (round to nearest even), `id = d ? 1/d : 0`, truncation of `x*id + 8.5`
(Q4_0) / `+ 16.5` (Q5_0) / `+ 0.5` (Q4_1, Q5_1) and round-half-away-from-zero (Q8_0). MXFP4 takes
`e = floor(log2(amax)) - 2 + 127` and, per value, the nearest point of the doubled E2M1 grid times
2^(e-128) (the first in ggml's table order on ties). F16 is numpy's f32->f16 conversion and BF16 is
ggml's round-to-nearest-even, both IEEE-exact.
gguf-py 0.19 cannot quantize the K-quants (Q2_K..Q6_K, Q8_K); it can also quantize TQ1_0 and TQ2_0,
which are not generated here.
"""

if __name__ == "__main__":
    main()
