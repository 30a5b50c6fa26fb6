"""Registered fairseq criteria; the loss maths lives in pure functions they call."""
