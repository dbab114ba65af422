"""``fakeproc run``: real, unmodified programs in a mount namespace whose /proc is a fakeproc mount."""
