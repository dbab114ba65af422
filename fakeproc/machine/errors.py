"""The one exception the machine raises."""


class MachineError(Exception):
    """A request the kernel would refuse: carries the errno to answer with."""

    def __init__(self, err: int, message: str) -> None:
        super().__init__(message)
        self.errno = err
