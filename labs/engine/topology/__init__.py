"""Where a variant runs: the interface (base), local processes, Docker Compose."""
