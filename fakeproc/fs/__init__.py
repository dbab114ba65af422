"""Layer 3: the filesystem: tables of rows over the machine (tree, tables, core), run mode's passthrough of the
host's /proc beside them, and two thin FUSE adapters (rawfuse: the protocol over /dev/fuse; fusepy_ops:
libfuse 2 through fusepy)."""
