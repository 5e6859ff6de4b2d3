"""Infrastructure for Trainbot: deployment tooling and local stand-ins for AWS services."""
