"""The standing faults-and-attacks suite (issue 8, section 3): see docs/faults.md."""
