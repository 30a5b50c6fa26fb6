"""Registered fairseq models and architectures (translate fairseq configs into modules/)."""
