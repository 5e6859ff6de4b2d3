"""Test doubles that implement Trainbot's ports in memory (see tests/contract for the proof)."""
