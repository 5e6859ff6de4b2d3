"""Deterministic simulation of Trainbot: one process, one simulated clock, every side effect
behind a port, a scheduler that chooses the order of events and the faults (see README,
"Simulation")."""
