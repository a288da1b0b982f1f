"""Helpers shared by the test modules (cohorts, plink2 oracle, workflow runs, toy training data)."""
