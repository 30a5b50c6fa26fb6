"""Registered fairseq tasks and the datasets they build."""
