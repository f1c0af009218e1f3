"""MinHash building blocks: signatures agree with datasketch, LSH parameters, streaming merge, union-find."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from datasketch import MinHash

from corpus.curate.dedup_index import Part, Run, UnionFind, bucket_edges, merge_runs
from corpus.curate.minhash import (
    ExactJaccard,
    band_keys,
    candidate_probability,
    choose_bands,
    format_s_curve,
    permutations,
    shingle_hashes,
    signature_minhash,
    signatures,
)


def words(rng: random.Random, n: int) -> list[str]:
    return [f"w{rng.randrange(500)}" for _ in range(n)]


def grams(text: str, n: int = 5) -> set[tuple[str, ...]]:
    w = text.lower().split()
    return {tuple(w[i : i + n]) for i in range(max(1, len(w) - n + 1))}


def test_permutations_are_datasketchs() -> None:
    reference = MinHash(num_perm=128, seed=7, scheme="affine32").permutations
    a, b = permutations(128, 7)
    assert np.array_equal(reference[0], a) and np.array_equal(reference[1], b)


def test_signatures_are_datasketch_minhash_computed_in_batch() -> None:
    rng = random.Random(1)
    texts = [" ".join(words(rng, n)) for n in (0, 3, 5, 40, 200)] + ["Punctuation, only? !!"]
    hashes, offsets = shingle_hashes(texts, 5)
    assert list(np.diff(offsets)) == [0, 1, 1, 36, 196, 1]  # short texts are one shingle, empty ones none
    sigs = signatures(hashes, offsets, num_perm=64, seed=3)
    for i in range(len(texts)):
        reference = MinHash(num_perm=64, seed=3, hashfunc=lambda x: x)
        reference.update_batch(hashes[offsets[i] : offsets[i + 1]].tolist())
        assert np.array_equal(reference.hashvalues, sigs[i])
        assert signature_minhash(sigs[i], seed=3).jaccard(reference) == 1.0


def test_signature_estimate_tracks_exact_jaccard() -> None:
    rng = random.Random(2)
    base = words(rng, 400)
    variant = list(base)
    for i in rng.sample(range(400), 12):
        variant[i] = "new"
    a, b = " ".join(base), " ".join(variant)
    hashes, offsets = shingle_hashes([a, b], 5)
    sigs = signatures(hashes, offsets, num_perm=256)
    exact = len(grams(a) & grams(b)) / len(grams(a) | grams(b))
    estimate = signature_minhash(sigs[0]).jaccard(signature_minhash(sigs[1]))
    assert estimate == pytest.approx(exact, abs=0.08)
    # The same text always gets the same signature (reruns and other processes agree).
    again = signatures(*shingle_hashes([a], 5), num_perm=256)
    assert np.array_equal(again[0], sigs[0])


def test_char_shingles_see_text_without_spaces() -> None:
    rng = random.Random(3)
    chars = "".join(chr(0x4E00 + rng.randrange(3000)) for _ in range(300))
    near = chars[:150] + "的" + chars[151:]
    word_hashes, word_offsets = shingle_hashes([chars, near], 5)
    assert list(np.diff(word_offsets)) == [1, 1]  # one "word": useless for near-dedup
    char_hashes, char_offsets = shingle_hashes([chars, near], 5, char=True)
    assert list(np.diff(char_offsets)) == [296, 296]
    first = set(char_hashes[: char_offsets[1]].tolist())
    second = set(char_hashes[char_offsets[1] :].tolist())
    assert len(first & second) / len(first | second) > 0.9


def test_bands_follow_the_threshold_and_the_curve_is_printed() -> None:
    for threshold in (0.6, 0.75, 0.85):
        bands, rows = choose_bands(threshold, 128)
        assert bands * rows <= 128
        assert abs((1 / bands) ** (1 / rows) - threshold) < 0.02
        assert candidate_probability(threshold - 0.2, bands, rows) < 0.1
        assert candidate_probability(min(1.0, threshold + 0.15), bands, rows) > 0.9
    bands, rows = choose_bands(0.75, 128, min_recall=0.95)
    assert candidate_probability(0.75, bands, rows) >= 0.95
    curve = format_s_curve(14, 8, 0.75)
    assert "14 bands x 8 rows" in curve and "J=0.75   0.772" in curve
    with pytest.raises(ValueError):
        choose_bands(1.5, 128)


def test_band_keys_match_exactly_when_a_band_matches() -> None:
    sigs = np.arange(24, dtype=np.uint32).reshape(2, 12)
    sigs[1, :4] = sigs[0, :4]  # same first band of 4 rows, other bands differ
    keys = band_keys(sigs, bands=3, rows=4)
    assert keys[0, 0] == keys[1, 0]
    assert (keys[0, 1:] != keys[1, 1:]).all()


def test_streaming_merge_keeps_buckets_whole_in_bounded_blocks() -> None:
    rng = np.random.default_rng(4)
    runs, everything, base = [], [], 0
    for size in (3000, 1, 0, 5000, 2500):
        keys = np.sort(rng.integers(0, 400, size).astype(np.uint64)).reshape(1, -1)
        pos = np.arange(size, dtype=np.uint32).reshape(1, -1)
        runs.append(Run(keys, pos, base))
        everything += [(int(k), base + i) for i, k in enumerate(keys[0])]
        base += size
    blocks = list(merge_runs(runs, band=0, memory=16 * 1024 * 3))  # 1024 entries per run per round
    assert len(blocks) > 3
    merged = [(int(k), int(g)) for keys, gidx in blocks for k, g in zip(keys, gidx, strict=True)]
    assert merged == sorted(everything)
    seen_keys: set[int] = set()
    for keys, _ in blocks:  # no key appears in two blocks
        block_keys = set(keys.tolist())
        assert not block_keys & seen_keys
        seen_keys |= block_keys


def test_bucket_edges_link_each_member_to_the_first() -> None:
    keys = np.array([1, 1, 1, 2, 3, 3], dtype=np.uint64)
    index = np.array([4, 7, 9, 1, 0, 5])
    u, v = bucket_edges(keys, index)
    assert sorted(zip(u.tolist(), v.tolist(), strict=True)) == [(0, 5), (4, 7), (4, 9)]
    u, v = bucket_edges(keys, index, chain=True)
    assert (7, 9) in set(zip(u.tolist(), v.tolist(), strict=True))


def test_union_find_components_match_a_graph_search() -> None:
    rng = np.random.default_rng(5)
    n = 2000
    u, v = rng.integers(0, n, 1500), rng.integers(0, n, 1500)
    uf = UnionFind(n)
    uf.union_many(u[:1000], v[:1000])
    for a, b in zip(u[1000:].tolist(), v[1000:].tolist(), strict=True):
        uf.union(a, b)
    roots = uf.roots()
    # reference: iterative graph search
    neighbours: dict[int, list[int]] = {}
    for a, b in zip(u.tolist(), v.tolist(), strict=True):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    component = np.full(n, -1)
    for start in range(n):
        if component[start] >= 0:
            continue
        stack = [start]
        component[start] = start  # starts are visited in order, so this is the lowest member
        while stack:
            node = stack.pop()
            for nxt in neighbours.get(node, []):
                if component[nxt] < 0:
                    component[nxt] = start
                    stack.append(nxt)
    assert np.array_equal(roots, component)


def test_verifier_leaves_common_shingles_out_and_falls_back_to_all_of_them(tmp_path: Path) -> None:
    """Shingles in `common_df` or more documents (boilerplate) do not count, unless nothing else is left."""
    boiler = np.arange(100, dtype=np.uint32)
    own = [np.arange(1000, 1020), np.arange(2000, 2020), np.r_[np.arange(1000, 1018), [5000, 5001]]]
    sets = [np.union1d(boiler, o).astype(np.uint32) for o in own]
    sets += [boiler[:90].copy(), boiler[:80].copy()]  # pages that are all boilerplate
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in sets])]).astype(np.int64)
    np.concatenate(sets).tofile(tmp_path / "00000.shingles.u32")
    np.save(tmp_path / "00000.shingle_offsets.npy", offsets)
    parts = [Part(tmp_path, "00000", 0, len(sets), old=False)]
    verify = ExactJaccard(parts, threshold=0.5, common_df=4, full_threshold=0.95)
    # 0-1: the same boilerplate around different text (all-shingle Jaccard 0.71): not duplicates;
    # 0-2: the same text, 2 of 20 shingles changed: duplicates; 3-4: nothing distinctive, so all shingles
    # (Jaccard 0.89) are compared with the threshold.
    assert verify(np.array([0, 0, 3]), np.array([1, 2, 4])).tolist() == [False, True, True]
    assert ExactJaccard(parts, threshold=0.5, common_df=None)(np.array([0]), np.array([1])).tolist() == [True]
    assert ExactJaccard(parts, 0.5, common_df=4, full_threshold=0.7)(np.array([0]), np.array([1])).tolist() == [True]
    assert ExactJaccard(parts, 0.9, common_df=4)(np.array([3]), np.array([4])).tolist() == [False]
