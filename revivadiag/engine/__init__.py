"""How revivadiag reaches a Docker Engine and a container's network namespace."""
