"""Bit operations shared by the compiled (Numba) genotype kernels: popcount, and the layout of
PLINK 1 .bed rows read as little-endian uint64 words (32 samples of 2 bits each).

.bed codes per sample (low bit first): 00 homozygous A1, 01 missing, 10 heterozygous,
11 homozygous A2; A1 (.bim column 5) is the counted ALT allele, so 00 = 2 ALT copies, 11 = 0.
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

EVEN_BITS = np.uint64(0x5555555555555555)


@intrinsic
def popcount(typingctx, word):
    """Number of set bits of a uint64 (LLVM's ctpop: one POPCNT instruction)."""
    signature = types.uint64(types.uint64)

    def codegen(context, builder, sig, args):
        function = builder.module.declare_intrinsic("llvm.ctpop", [args[0].type])
        return builder.call(function, args)

    return signature, codegen


@njit(cache=True, nogil=True)
def slot_mask(word: int, n_samples: int) -> np.uint64:
    """Even-bit mask of the samples packed word ``word`` (samples 32 word .. 32 word + 31) holds."""
    held = min(max(n_samples - 32 * word, 0), 32)
    if held == 32:
        return EVEN_BITS
    return (np.uint64((1 << (2 * held)) - 1)) & EVEN_BITS


@njit(cache=True, nogil=True)
def row_words(rows: np.ndarray, v: int) -> tuple[np.ndarray, np.uint64]:
    """.bed row ``v`` of ``rows`` (C-contiguous uint8 ``(n_variants, n_bytes)``) as little-endian
    uint64 words: a view of its whole words ``(n_bytes // 8,)``, and the last, partial word (its
    remaining bytes, zero padded; 0 when there are none)."""
    n_bytes = rows.shape[1]
    full = n_bytes // 8
    whole = rows.reshape(-1)[v * n_bytes : v * n_bytes + 8 * full].view(np.uint64)
    tail = np.uint64(0)
    for b in range(n_bytes - 8 * full):
        tail |= np.uint64(rows[v, 8 * full + b]) << np.uint64(8 * b)
    return whole, tail


def sample_slot_mask(n_samples: int, sample_idx: np.ndarray | None) -> np.ndarray:
    """uint64 ``(ceil(n_samples / 32),)``: bit 2s of word w set when sample 32 w + s is selected
    (all samples when ``sample_idx`` is None)."""
    selected = np.zeros(-(-n_samples // 32) * 32, dtype=np.uint64)
    selected[np.arange(n_samples) if sample_idx is None else np.asarray(sample_idx)] = 1
    shifts = (2 * np.arange(32)).astype(np.uint64)
    return (selected.reshape(-1, 32) << shifts[None, :]).sum(axis=1, dtype=np.uint64)
