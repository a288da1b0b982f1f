"""Planted relatives: duplicates, parent-offspring pairs and full siblings among simulated people.

Each relative replaces a simulated person's genotypes (so the cohort keeps its size, and traits
and images drawn later follow the new genotypes). A child gets one allele from each parent at
every SNP independently (no linkage within a chromosome: the expected kinship is exact, only its
spread is a little narrower than with recombination blocks). Relatives are drawn within one
population, so no planted pair is also admixed.
"""

from __future__ import annotations

import numpy as np
import polars as pl

PAIR_SCHEMA = {"IID1": pl.String, "IID2": pl.String, "relation": pl.String, "kinship": pl.Float64}
RELATION_KINSHIP = {"duplicate": 0.5, "parent-offspring": 0.25, "full siblings": 0.25}


def transmitted_alleles(parent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One allele drawn from each genotype of ``parent`` (ALT counts 0/1/2, ``(n_snps,)``): int8
    0/1 per SNP, 1 with probability count / 2."""
    return (rng.random(parent.shape) < parent / 2.0).astype(np.int8)


def child_of(mother: np.ndarray, father: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A child's ALT counts ``(n_snps,)`` from two parents' ALT counts."""
    return transmitted_alleles(mother, rng) + transmitted_alleles(father, rng)


def choose_people(population: np.ndarray, n_needed: int, rng: np.random.Generator) -> np.ndarray:
    """``n_needed`` distinct people, int64 ``(n_needed,)``; consecutive groups are filled from one
    population at a time (the caller takes groups of 2 or 3 from the front)."""
    order = np.concatenate([rng.permutation(np.flatnonzero(population == p))
                            for p in np.unique(population)])
    return order[:n_needed]


def plant_relatives(alt: np.ndarray, population: np.ndarray, iids: list[str], n_duplicates: int,
                    n_parent_offspring: int, n_sibling_pairs: int,
                    rng: np.random.Generator | None) -> pl.DataFrame:
    """Overwrite people in ``alt`` (int8 ALT counts ``(n_snps, n_samples)``, no missing) with
    relatives of others, in place; returns the planted pairs (IID1, IID2, relation, kinship).

    A duplicate copies person A into B. A parent-offspring pair makes B the child of A and of B's
    own former genotypes (a parent outside the cohort). A sibling pair makes A and B both children
    of A's and B's former genotypes (parents outside the cohort).
    """
    groups = [("duplicate", n_duplicates), ("parent-offspring", n_parent_offspring),
              ("full siblings", n_sibling_pairs)]
    n_needed = 2 * sum(n for _, n in groups)
    if not n_needed:
        return pl.DataFrame(schema=PAIR_SCHEMA)
    if n_needed > alt.shape[1]:
        raise ValueError(f"{n_needed} people needed for the planted relatives, {alt.shape[1]} simulated")
    people = choose_people(population, n_needed, rng)
    pairs, position = [], 0
    for relation, count in groups:
        for _ in range(count):
            a, b = (int(i) for i in people[position:position + 2])
            position += 2
            if population[a] != population[b]:
                continue  # the pair straddles two populations' groups: left out (at most one per edge)
            if relation == "duplicate":
                alt[:, b] = alt[:, a]
            elif relation == "parent-offspring":
                alt[:, b] = child_of(alt[:, a], alt[:, b], rng)
            else:
                mother, father = alt[:, a].copy(), alt[:, b].copy()
                alt[:, a] = child_of(mother, father, rng)
                alt[:, b] = child_of(mother, father, rng)
            pairs.append((iids[a], iids[b], relation, RELATION_KINSHIP[relation]))
    return pl.DataFrame(pairs, schema=PAIR_SCHEMA, orient="row")
