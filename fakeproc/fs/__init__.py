"""Layer 3: the filesystem: a table of entries over the machine, and a thin fusepy adapter."""
