"""fakeproc: a FUSE-mounted fake procfs serving the Linux OOM files of a simulated machine."""

__version__ = "0.1.0"
