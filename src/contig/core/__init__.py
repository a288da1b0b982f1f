"""Shared plumbing: atomic writes, one-line input errors, tables, input sheets, run locks."""
