"""The ``vttiro`` console command installed by the wheel: the native command itself."""

import signal
import sys

from ._native import run_cli


def main() -> None:
    # Python's own SIGINT handler only sets a flag the native command never reads; with
    # the default action Ctrl-C stops `vttiro transcribe` as it stops the native binary
    # (`vttiro serve` installs its own handler for a graceful stop).
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    sys.exit(run_cli(["vttiro", *sys.argv[1:]]))


if __name__ == "__main__":
    main()
